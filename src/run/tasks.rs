//! The run's producer and consumer threads: their handles and stop flags, bounded joins, and
//! the group members a fault may kill and restart.

use super::*;

/// Everything the tasks of one run share.
pub(super) struct Tasks {
    pub(super) producers: Vec<JoinHandle<Result<(), String>>>,
    pub(super) consumers: Vec<JoinHandle<Result<(), String>>>,
    pub(super) stop_producers: Stop,
    pub(super) stop_consumers: Stop,
    pub(super) abandon: Stop,
}

impl Tasks {
    pub(super) fn stop_all(&self) {
        self.stop_producers.raise();
        self.stop_consumers.raise();
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        // Never leave client threads running past the run, whatever path got us here.
        self.stop_all();
    }
}

/// The run's consumer members, as `kill_member` faults see them.
pub(super) struct RunMembers<'a> {
    /// Every member's task (group-major), kept to start a member again.
    pub(super) templates: &'a mut Vec<consumer::MemberTask>,
    /// Member threads; restarted members are added.
    pub(super) handles: &'a mut Vec<JoinHandle<Result<(), String>>>,
    /// Members per group.
    pub(super) per_group: u32,
}

impl RunMembers<'_> {
    pub(super) fn index(&self, group: u32, member: u32) -> Result<usize, String> {
        let i = (group * self.per_group + member) as usize;
        if member >= self.per_group || i >= self.templates.len() {
            return Err(format!(
                "there is no consumer group {group} member {member}"
            ));
        }
        Ok(i)
    }
}

impl fault::Members for RunMembers<'_> {
    fn kill(&mut self, group: u32, member: u32) -> Result<(), String> {
        let i = self.index(group, member)?;
        self.templates[i].kill.raise();
        Ok(())
    }

    fn restart(&mut self, group: u32, member: u32) -> Result<(), String> {
        let i = self.index(group, member)?;
        let mut task = self.templates[i].clone();
        task.kill = Stop::default();
        self.templates[i] = task.clone();
        let handle = consumer::spawn(task)
            .map_err(|e| format!("cannot start group {group} member {member} again: {e}"))?;
        self.handles.push(handle);
        Ok(())
    }
}

pub(super) fn join_bounded(
    handles: &mut Vec<JoinHandle<Result<(), String>>>,
    bound: Duration,
    what: &str,
    failures: &mut Vec<String>,
) {
    let deadline = Instant::now() + bound;
    while !handles.iter().all(JoinHandle::is_finished) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for h in handles.drain(..) {
        if !h.is_finished() {
            failures.push(format!(
                "a {what} task did not stop within {bound:?} (left behind)"
            ));
            continue;
        }
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push(format!("a {what} task panicked")),
        }
    }
}

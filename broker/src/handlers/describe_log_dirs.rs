//! DescribeLogDirs: per log dir, the size of every partition stored there.
//!
//! This is how a harness verifies on-disk totals on any Kafka cluster, so sizes are the real
//! sizes of the segment files, and total/usable bytes come from the file system (v4+).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::RequestContext;
use crate::wire::str_bytes;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let broker = ctx.broker;
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let mut resp = DescribeLogDirsResponse::default();
    for dir in &broker.config.log_dirs {
        let mut result = DescribeLogDirsResult::default();
        result.log_dir = str_bytes(&dir.to_string_lossy());
        if let Some((total, usable)) = fs_space(dir) {
            result.total_bytes = total;
            result.usable_bytes = usable;
        } else {
            result.total_bytes = -1;
            result.usable_bytes = -1;
        }
        for topic in broker.topics.all() {
            let filter = wanted.as_ref().map(|w| w.get(&topic.name));
            if let Some(None) = filter {
                continue;
            }
            let mut tr = DescribeLogDirsTopic::default();
            tr.name = TopicName(str_bytes(&topic.name));
            for p in topic.hosted() {
                if !p.dir.starts_with(dir) {
                    continue;
                }
                if let Some(Some(list)) = filter {
                    if !list.contains(&p.index) {
                        continue;
                    }
                }
                let mut pr = DescribeLogDirsPartition::default();
                pr.partition_index = p.index;
                pr.partition_size = p.size_bytes() as i64;
                pr.offset_lag = 0;
                tr.partitions.push(pr);
            }
            if !tr.partitions.is_empty() {
                result.topics.push(tr);
            }
        }
        resp.results.push(result);
    }
    resp
}

/// Total and available bytes of the file system holding `dir`.
fn fs_space(dir: &std::path::Path) -> Option<(i64, i64)> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    let frag = st.fragment_size() as i64;
    Some((
        st.blocks() as i64 * frag,
        st.blocks_available() as i64 * frag,
    ))
}

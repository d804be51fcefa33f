//! A size-limited tmpfs that a test mounts itself (a full disk on demand), shared by kbroker's
//! and kbench's full-disk tests (`tests/disk_full.rs` includes this file by path).
//!
//! Mounting needs root (CAP_SYS_ADMIN); without it [`Tmpfs::mount`] fails the test, saying so.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

/// A tmpfs of a given size mounted on a fresh temporary directory; unmounted on drop.
pub struct Tmpfs {
    pub mount_point: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("temp dir");
        let mount_point = dir.path().join("mnt");
        fs::create_dir(&mount_point).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount_point)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs root to mount a tmpfs of {size} on {} (`mount -t tmpfs` said: {}); \
             run it as root (.ci/run does)",
            mount_point.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs {
            mount_point,
            _dir: dir,
        }
    }

    /// Fills the file system with `filler` until the disk is full, then gives `free` bytes
    /// back: what is left is about `free` bytes, and deleting `filler` frees the rest.
    pub fn fill_leaving(&self, free: u64) -> PathBuf {
        let filler = self.mount_point.join("filler");
        let mut f = fs::File::create(&filler).expect("create filler");
        let chunk = vec![0x5Au8; 64 << 10];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("writing the filler: {e}"),
            }
        }
        let len = f.metadata().expect("stat filler").len();
        f.set_len(len.saturating_sub(free)).expect("shrink filler");
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.mount_point)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds a file open: detach it now, it goes when released.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mount_point)
                .status();
        }
    }
}

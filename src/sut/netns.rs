//! A network of namespaces for embedded brokers, so that a fault can cut links between them
//! (`[[faults]] action = "partition"`).
//!
//! Each broker lives in a network namespace of its own, joined to kbench's (root) namespace by
//! a veth pair whose root end is a port of one bridge. Every address is a loopback address:
//! the bridge holds `127.77.<net>.1/24` and broker `id` holds `127.77.<net>.<10 + id>` on its
//! `eth0`, so clients and brokers reach each other at those addresses and at no other. Linux
//! treats 127/8 as local to every namespace (`local 127.0.0.0/8 dev lo` in the `local` table)
//! and drops it on other interfaces as martian, so two things make it cross a veth:
//! `route_localnet = 1` on the interfaces involved (the bridge, and `all` inside each broker's
//! namespace), and a unicast route for the /24 in the `local` table, longer than the /8 and so
//! chosen first (in the root namespace through the bridge, in a broker's through `eth0`).
//! Both go with the bridge: deleting it removes them.
//!
//! A partition is made of policy rules inside the brokers' namespaces only: broker A drops
//! every packet from a broker on the other side (`ip rule add from B blackhole`), which is a
//! silent drop in both directions once both sides have their rules (a sender sees timeouts, as
//! across a broken switch). When the clients are on one side, the brokers of the other side
//! also drop packets from and to the bridge address, which is where the clients' packets come
//! from. The rule that consults the `local` table is moved from priority 0 to 100 in each
//! broker's namespace so that partition rules (priority 10 + fault index) come before it.
//! Healing deletes exactly the rules the cut added. Nothing of a partition touches the root
//! namespace.
//!
//! Everything is made with iproute2's `ip`, one command at a time, and logged to a file.
//! Names carry the owner's pid, `kbn<pid hex>-<n>` for the bridge and `kbn<pid hex>-<n>b<id>`
//! for a broker's veth and namespace (at most 15 characters, the limit of an interface name).
//! Everything is removed when the [`Netns`] is dropped, and by a second Ctrl-C
//! ([`remove_registered`]). What a kbench that was killed left behind (its pid is gone) is
//! removed by the next one that builds a network, under a lock that also keeps two runs from
//! picking the same /24.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use super::TargetError;

/// First two octets of every address: `127.77.<net>.<host>`.
const PREFIX: [u8; 2] = [127, 77];
/// Host part of broker `id`'s address: `BROKER_HOST_BASE + id`.
const BROKER_HOST_BASE: u32 = 10;
/// Priority the `local` table lookup is moved to inside a broker's namespace.
const LOCAL_RULE_PREF: u32 = 100;
/// Priority of the partition rules of fault 0 (fault `i` gets `+ i`, so that two faults'
/// identical rules are distinct and each heal deletes its own).
const PARTITION_PREF: u32 = 10;
/// Where `ip netns add` names namespaces.
const NETNS_DIR: &str = "/var/run/netns";
/// Held while stale networks are swept and a /24 is chosen.
const LOCK_FILE: &str = "/run/kbench-netns.lock";
/// Name prefix of everything kbench makes.
const NAME_PREFIX: &str = "kbn";

/// Networks of this process not yet removed (for the second Ctrl-C).
static REGISTERED: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Networks made by this process so far (names the next one).
static MADE: AtomicU32 = AtomicU32::new(0);

/// Which side of a partition kbench's clients (producers, consumers, metadata look-ups) are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSide {
    /// They reach every broker: only links between brokers are cut.
    All,
    /// They are with side 0 or 1 and cannot reach the brokers of the other.
    Side(usize),
}

/// The rules one partition added, to be deleted by [`Netns::heal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// `ip` arguments of each rule, without the verb: `-n <ns> rule <add|del> <selector>`.
    rules: Vec<Rule>,
}

/// One policy rule in one broker's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// The namespace.
    ns: String,
    /// `pref <p> from|to <addr> blackhole`.
    selector: Vec<String>,
}

impl Rule {
    fn args(&self, verb: &str) -> Vec<String> {
        let mut a = vec![
            "-n".to_string(),
            self.ns.clone(),
            "rule".into(),
            verb.into(),
        ];
        a.extend(self.selector.iter().cloned());
        a
    }
}

/// The namespaces, veth pairs and bridge of one embedded cluster.
#[derive(Debug)]
pub struct Netns {
    /// Name of the bridge and prefix of every other name.
    prefix: String,
    /// Third octet of the /24: `127.77.<net>.0/24`.
    net: u8,
    /// Broker ids, one namespace each.
    ids: Vec<u32>,
    /// Where every `ip` command and its outcome is appended.
    log: PathBuf,
}

impl Netns {
    /// Builds the network of brokers `1..=brokers`, logging to `log`. Needs root and `ip`.
    pub fn create(brokers: u32, log: &Path) -> Result<Netns, TargetError> {
        let fail = |m: String| TargetError::Io(format!("network namespaces: {m}"));
        File::create(log).map_err(|e| fail(format!("cannot create {}: {e}", log.display())))?;
        let n = MADE.fetch_add(1, Ordering::Relaxed) % 100;
        let prefix = format!("{NAME_PREFIX}{:x}-{n}", std::process::id());
        let mut net = Netns {
            prefix,
            net: 0,
            ids: (1..=brokers).collect(),
            log: log.to_path_buf(),
        };
        if let Ok(mut r) = REGISTERED.lock() {
            r.push(net.prefix.clone());
        }
        // Left-overs of this very prefix (a pid reused after a crash) go first.
        net.remove();
        {
            let lock = File::create(LOCK_FILE)
                .map_err(|e| fail(format!("cannot create {LOCK_FILE}: {e}")))?;
            let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, e)| fail(format!("cannot lock {LOCK_FILE}: {e}")))?;
            net.sweep_stale();
            net.net = net.free_net().map_err(fail)?;
            net.ip(&["link", "add", &net.prefix, "type", "bridge"])
                .map_err(fail)?;
            net.ip(&[
                "addr",
                "add",
                &format!("{}/24", net.bridge_addr()),
                "dev",
                &net.prefix,
            ])
            .map_err(fail)?;
        }
        net.build().map_err(fail)?;
        Ok(net)
    }

    /// The address of the root namespace's end (where the clients' packets come from).
    pub fn bridge_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(PREFIX[0], PREFIX[1], self.net, 1)
    }

    /// The address of broker `id`.
    pub fn broker_addr(&self, id: u32) -> Ipv4Addr {
        let host = u8::try_from(BROKER_HOST_BASE + id).unwrap_or(u8::MAX);
        Ipv4Addr::new(PREFIX[0], PREFIX[1], self.net, host)
    }

    /// The name of broker `id`'s namespace (and of its veth's root end).
    pub fn name(&self, id: u32) -> String {
        format!("{}b{id}", self.prefix)
    }

    /// Broker `id`'s namespace, to enter with `setns` (opened before a fork).
    pub fn open(&self, id: u32) -> std::io::Result<File> {
        File::open(Path::new(NETNS_DIR).join(self.name(id)))
    }

    /// Cuts the links between `sides` (broker ids; a broker in neither side keeps every link)
    /// and, unless `clients` is [`ClientSide::All`], between the clients and the other side;
    /// `fault` numbers the rules. Returns what to [`Netns::heal`]; on error nothing stays cut.
    pub fn cut(
        &self,
        sides: &[Vec<u32>; 2],
        clients: ClientSide,
        fault: usize,
    ) -> Result<Cut, String> {
        let cut = self.rules(sides, clients, fault);
        for (i, r) in cut.rules.iter().enumerate() {
            if let Err(e) = self.ip_strings(&r.args("add")) {
                let _ = self.heal(&Cut {
                    rules: cut.rules[..i].to_vec(),
                });
                return Err(e);
            }
        }
        Ok(cut)
    }

    /// Deletes the rules of a cut (every one is tried; the first error is returned).
    pub fn heal(&self, cut: &Cut) -> Result<(), String> {
        let mut first = Ok(());
        for r in &cut.rules {
            if let Err(e) = self.ip_strings(&r.args("del")) {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// The rules of a cut: each broker drops packets from every broker on the other side, and
    /// the brokers away from the clients drop packets from and to the bridge address.
    fn rules(&self, sides: &[Vec<u32>; 2], clients: ClientSide, fault: usize) -> Cut {
        let pref = (PARTITION_PREF + fault as u32).to_string();
        let rule = |id: u32, dir: &str, addr: Ipv4Addr| Rule {
            ns: self.name(id),
            selector: vec![
                "pref".into(),
                pref.clone(),
                dir.into(),
                addr.to_string(),
                "blackhole".into(),
            ],
        };
        let mut rules = Vec::new();
        for (s, side) in sides.iter().enumerate() {
            for &a in side {
                for &b in &sides[1 - s] {
                    rules.push(rule(a, "from", self.broker_addr(b)));
                }
                if clients == ClientSide::Side(1 - s) {
                    rules.push(rule(a, "from", self.bridge_addr()));
                    rules.push(rule(a, "to", self.bridge_addr()));
                }
            }
        }
        Cut { rules }
    }

    /// Namespaces, veth pairs, addresses and routes, after the bridge exists.
    fn build(&self) -> Result<(), String> {
        let bridge = self.prefix.as_str();
        let subnet = format!("{}/24", Ipv4Addr::new(PREFIX[0], PREFIX[1], self.net, 0));
        sysctl_here(&format!("conf/{bridge}/route_localnet"))?;
        self.ip(&["link", "set", bridge, "up"])?;
        let src = self.bridge_addr().to_string();
        self.ip(&[
            "route", "add", &subnet, "dev", bridge, "table", "local", "src", &src,
        ])?;
        for &id in &self.ids {
            let name = self.name(id);
            let addr = self.broker_addr(id).to_string();
            self.ip(&["netns", "add", &name])?;
            self.ip(&[
                "link", "add", &name, "type", "veth", "peer", "name", "eth0", "netns", &name,
            ])?;
            self.ip(&["link", "set", &name, "master", bridge, "up"])?;
            let ns = self
                .open(id)
                .map_err(|e| format!("cannot open {NETNS_DIR}/{name}: {e}"))?;
            sysctl_in(&ns, "conf/all/route_localnet")?;
            let n = ["-n", name.as_str()];
            for args in [
                &["link", "set", "lo", "up"][..],
                &["addr", "add", &format!("{addr}/24"), "dev", "eth0"],
                &["link", "set", "eth0", "up"],
                &[
                    "route", "add", &subnet, "dev", "eth0", "table", "local", "src", &addr,
                ],
                &[
                    "rule",
                    "add",
                    "pref",
                    &LOCAL_RULE_PREF.to_string(),
                    "lookup",
                    "local",
                ],
                &["rule", "del", "pref", "0"],
            ] {
                let all: Vec<&str> = n.iter().chain(args).copied().collect();
                self.ip(&all)?;
            }
        }
        Ok(())
    }

    /// The lowest `<net>` in 1..=254 whose `127.77.<net>.1` no interface holds.
    fn free_net(&self) -> Result<u8, String> {
        let out = run_ip(&["-4", "-o", "addr", "show"])?;
        let used = used_nets(&out);
        (1..=254u8)
            .find(|n| !used.contains(n))
            .ok_or_else(|| "every 127.77.<n>.0/24 is taken by another kbench".to_string())
    }

    /// Removes networks left by kbench processes that are gone.
    fn sweep_stale(&self) {
        for prefix in stale_prefixes(&existing_names()) {
            self.log_line(&format!("# removing the network left by {prefix}"));
            remove_prefix(&prefix, Some(&self.log));
        }
    }

    /// Removes everything of this network (each step tried, errors logged).
    fn remove(&self) {
        remove_prefix(&self.prefix, Some(&self.log));
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let r = run_ip(args).map(drop);
        self.log_line(&format!(
            "ip {}{}",
            args.join(" "),
            r.as_ref()
                .err()
                .map_or(String::new(), |e| format!("  # {e}"))
        ));
        r
    }

    fn ip_strings(&self, args: &[String]) -> Result<(), String> {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ip(&a)
    }

    fn log_line(&self, line: &str) {
        log_to(Some(&self.log), line);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.remove();
        if let Ok(mut r) = REGISTERED.lock() {
            r.retain(|p| *p != self.prefix);
        }
    }
}

/// Removes every network this process made and has not removed yet (the second Ctrl-C, which
/// exits without running destructors).
pub fn remove_registered() {
    let prefixes = REGISTERED.lock().map(|r| r.clone()).unwrap_or_default();
    for p in prefixes {
        remove_prefix(&p, None);
    }
}

fn log_to(log: Option<&Path>, line: &str) {
    if let Some(path) = log {
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(path) {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Deletes the veths, namespaces and bridge whose names start with `prefix` (root ends of veth
/// pairs first: deleting one deletes its peer; then the namespaces; the bridge last).
fn remove_prefix(prefix: &str, log: Option<&Path>) {
    let (links, namespaces) = existing_names();
    let mine = |n: &&String| {
        n.as_str() == prefix
            || n.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('b'))
    };
    let mut links: Vec<&String> = links.iter().filter(mine).collect();
    // The bridge (the shortest name) goes last.
    links.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for l in links.iter().filter(|l| l.len() > prefix.len()) {
        let r = run_ip(&["link", "del", l]);
        log_to(log, &format!("ip link del {l}{}", err_note(&r)));
    }
    for n in namespaces.iter().filter(mine) {
        let r = run_ip(&["netns", "del", n]);
        log_to(log, &format!("ip netns del {n}{}", err_note(&r)));
    }
    for l in links.iter().filter(|l| l.len() <= prefix.len()) {
        let r = run_ip(&["link", "del", l]);
        log_to(log, &format!("ip link del {l}{}", err_note(&r)));
    }
}

fn err_note(r: &Result<String, String>) -> String {
    r.as_ref()
        .err()
        .map_or(String::new(), |e| format!("  # {e}"))
}

/// Names of kbench's links and namespaces: (links, namespaces).
fn existing_names() -> (Vec<String>, Vec<String>) {
    let links = run_ip(&["-o", "link", "show"])
        .map(|out| link_names(&out))
        .unwrap_or_default();
    let namespaces = std::fs::read_dir(NETNS_DIR)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(NAME_PREFIX))
                .collect()
        })
        .unwrap_or_default();
    (links, namespaces)
}

/// Interface names starting with `kbn` in `ip -o link show` output (`3: name@peer: <...`).
fn link_names(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(NAME_PREFIX))
        .collect()
}

/// The pid (hex in the name) of the kbench that made `name`.
fn owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let hex = rest.split('-').next()?;
    u32::from_str_radix(hex, 16).ok()
}

/// The network prefixes (`kbn<pid>-<n>`) among `names` whose kbench is no longer running.
fn stale_prefixes((links, namespaces): &(Vec<String>, Vec<String>)) -> Vec<String> {
    let mut out: Vec<String> = links
        .iter()
        .chain(namespaces)
        .filter(|n| owner(n).is_some_and(|pid| !kbench_running(pid)))
        .filter_map(|n| {
            let (head, tail) = n.split_once('-')?;
            let seq: String = tail.chars().take_while(char::is_ascii_digit).collect();
            Some(format!("{head}-{seq}"))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether process `pid` exists and is a kbench (its `comm` starts with `kbench`: the binary,
/// or a test binary of the crate).
fn kbench_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with("kbench"))
}

/// Third octets of `127.77.<n>.*` addresses in `ip -4 -o addr show` output.
fn used_nets(out: &str) -> Vec<u8> {
    let want = format!("{}.{}.", PREFIX[0], PREFIX[1]);
    out.split_whitespace()
        .filter_map(|w| w.strip_prefix(&want))
        .filter_map(|rest| rest.split('.').next()?.parse().ok())
        .collect()
}

/// Runs `ip ARGS`; its stdout, or what went wrong with the command line in it.
fn run_ip(args: &[&str]) -> Result<String, String> {
    let o = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("cannot run `ip` (iproute2, needed for network namespaces; install it): {e}")
        })?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        let mut m = format!("`ip {}` failed ({})", args.join(" "), o.status);
        let err = String::from_utf8_lossy(&o.stderr);
        if !err.trim().is_empty() {
            let _ = write!(m, ": {}", err.trim());
        }
        Err(m)
    }
}

/// Sets `net.ipv4.<key>` = 1 in kbench's own namespace.
fn sysctl_here(key: &str) -> Result<(), String> {
    let path = format!("/proc/sys/net/ipv4/{key}");
    std::fs::write(&path, "1").map_err(|e| format!("cannot write 1 to {path}: {e}"))
}

/// Sets `net.ipv4.<key>` = 1 inside namespace `ns`: from a thread that enters it
/// (`/proc/sys/net` shows the namespace of the thread that opens it; the thread ends there).
fn sysctl_in(ns: &File, key: &str) -> Result<(), String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("cannot enter a broker's network namespace: {e}"))?;
            sysctl_here(key)
        })
        .join()
        .unwrap_or_else(|_| Err("the sysctl thread panicked".into()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Netns {
        Netns {
            prefix: "kbn1f-0".into(),
            net: 3,
            ids: vec![1, 2, 3],
            log: PathBuf::from("/dev/null"),
        }
    }

    fn rule_lines(c: &Cut) -> Vec<String> {
        c.rules.iter().map(|r| r.args("add").join(" ")).collect()
    }

    #[test]
    fn addresses_and_names_follow_the_layout() {
        let n = net();
        assert_eq!(n.bridge_addr().to_string(), "127.77.3.1");
        assert_eq!(n.broker_addr(2).to_string(), "127.77.3.12");
        assert_eq!(n.name(12), "kbn1f-0b12");
        // The longest name a pid (at most 2^22, 6 hex digits) and 64 brokers make fits the
        // 15 characters of an interface name.
        assert!(format!("kbn{:x}-99b64", 4_194_304).len() <= 15);
    }

    #[test]
    fn an_isolated_broker_drops_the_others_and_they_drop_it() {
        let n = net();
        let c = n.rules(&[vec![2], vec![1, 3]], ClientSide::All, 1);
        assert_eq!(
            rule_lines(&c),
            [
                "-n kbn1f-0b2 rule add pref 11 from 127.77.3.11 blackhole",
                "-n kbn1f-0b2 rule add pref 11 from 127.77.3.13 blackhole",
                "-n kbn1f-0b1 rule add pref 11 from 127.77.3.12 blackhole",
                "-n kbn1f-0b3 rule add pref 11 from 127.77.3.12 blackhole",
            ]
        );
        // Clients with the majority: the isolated broker also drops them, both ways.
        let c = n.rules(&[vec![2], vec![1, 3]], ClientSide::Side(1), 0);
        let lines = rule_lines(&c);
        assert_eq!(lines.len(), 6, "{lines:?}");
        assert!(lines.contains(&"-n kbn1f-0b2 rule add pref 10 from 127.77.3.1 blackhole".into()));
        assert!(lines.contains(&"-n kbn1f-0b2 rule add pref 10 to 127.77.3.1 blackhole".into()));
        assert!(!lines
            .iter()
            .any(|l| l.contains("b1 ") && l.contains(".3.1 ")));
        assert_eq!(c.rules[0].args("del")[3], "del");
    }

    #[test]
    fn stale_networks_are_those_of_processes_gone() {
        let out = "1: lo: <LOOPBACK,UP> mtu 65536\n\
                   7: kbn1f-0: <BROADCAST> mtu 1500\n\
                   8: kbn1f-0b1@if2: <BROADCAST> mtu 1500\n\
                   9: eth0: <BROADCAST> mtu 1500\n";
        assert_eq!(link_names(out), ["kbn1f-0", "kbn1f-0b1"]);
        assert_eq!(owner("kbn1f-0b1"), Some(0x1f));
        assert_eq!(owner("kbnzz"), None);
        // This process is running (a kbench test binary); pid 0x7fffffff is not.
        let me = format!("kbn{:x}-2", std::process::id());
        let gone = format!("kbn{:x}-12b3", i32::MAX);
        let names = (vec![me.clone(), format!("{me}b1")], vec![gone.clone()]);
        assert_eq!(stale_prefixes(&names), [format!("kbn{:x}-12", i32::MAX)]);
        assert_eq!(
            used_nets(
                "2: kbn1f-0    inet 127.77.3.1/24 scope global kbn1f-0\n1: lo inet 127.0.0.1/8"
            ),
            [3]
        );
    }
}

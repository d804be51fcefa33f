//! The harness's own cost, for the target "sampling and ledger cost stay under 2 % of CPU".
//!
//! - `ledger/*`: recording 1,048,576 messages (the 1 GiB scenario's count) as acknowledged and as
//!   received by one group, then the verdict. Divide by the run's CPU time to get the share.
//! - `sampler/one_second_at_250ms`: process CPU time (user + system, from getrusage) spent while
//!   a [`Sampler`] samples every 250 ms for one second. The figure criterion reports *is* the CPU
//!   time per second of sampling, i.e. the share of one core (1 ms = 0.1 %).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kbench::ledger::{verdict, AckLedger, GroupLedger};
use kbench::sampler::Sampler;

const PRODUCERS: u32 = 16;
const EACH: u32 = 65_536;

fn ledger(c: &mut Criterion) {
    let mut g = c.benchmark_group("ledger");
    g.throughput(Throughput::Elements(u64::from(PRODUCERS * EACH)));
    g.sample_size(10);
    g.bench_function("ack_1M", |b| {
        b.iter(|| {
            let mut acks = AckLedger::default();
            for seq in 0..EACH {
                for p in 0..PRODUCERS {
                    acks.ack(p, seq);
                }
            }
            acks
        })
    });
    let mut acks = AckLedger::default();
    for seq in 0..EACH {
        for p in 0..PRODUCERS {
            acks.ack(p, seq);
        }
    }
    g.bench_function("receive_1M_and_verdict", |b| {
        b.iter(|| {
            let mut group = GroupLedger::default();
            for seq in 0..EACH {
                for p in 0..PRODUCERS {
                    group.receive(p, seq, (p % 16) as i32);
                }
            }
            verdict(&acks, &group)
        })
    });
    g.finish();
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let tv =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(u.user_time()) + tv(u.system_time())
}

fn sampler(c: &mut Criterion) {
    let mut g = c.benchmark_group("sampler");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    g.bench_function("one_second_at_250ms", |b| {
        b.iter_custom(|iters| {
            let mut cpu = Duration::ZERO;
            for _ in 0..iters {
                let sampler = Sampler::start(
                    Duration::from_millis(250),
                    vec![("kbench".to_owned(), std::process::id())],
                );
                let (start_cpu, start) = (cpu_time(), Instant::now());
                std::thread::sleep(Duration::from_secs(1));
                cpu += cpu_time() - start_cpu;
                let _ = start.elapsed();
                drop(sampler.stop());
            }
            cpu
        })
    });
    g.finish();
}

criterion_group!(benches, ledger, sampler);
criterion_main!(benches);

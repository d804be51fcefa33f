//! kbench's per-message hot path without a broker, for instruction counts (callgrind): what the
//! harness adds to every message on top of the client library. `benches/hot-path-guard.sh` runs
//! it under valgrind's callgrind at two message counts and divides the difference, so start-up
//! (the payload pool, the histograms) cancels out and what is left is the work per message.
//!
//!   hot_path PHASE MESSAGES [REPEAT]
//!
//! PHASE is one of
//! - `produce`: take the message's buffer of the producer's ring (its body already in place),
//!   write the identity header and checksum, choose its key, count it as sent: what the producer
//!   thread does besides librdkafka's `produce` (the report thread gives the buffer back);
//! - `produce-copy`: the same message built in a scratch buffer (body copied from its slot),
//!   what the producer does when the message's ring buffer is still in flight;
//! - `produce-copy-and-seal`: the same message built the way kbench did before issue 14 (copy
//!   the body, then CRC32C the whole message), for comparison;
//! - `ack`: a delivery report of an acknowledged message (read the identity back, take the
//!   time, record counters, a histogram, ledger, per-partition counts, give the ring buffer
//!   back), each producer's into its own meter as in a run, so a producer's consecutive
//!   sequences extend its ledger's open run;
//! - `consume`: a consumed message (check run tag, length and CRC32C of the whole message,
//!   record counters, histograms, ledger, offsets), in batches of the member's `POLL_BATCH`
//!   with one clock read and one meter lock per batch, as the member does at full speed.
//!
//! REPEAT (default 1) runs each message's step that many times: `2` is the injected doubling
//! the guard must catch.
//!
//! Not a criterion bench: `cargo bench --bench hot_path` runs every phase once natively (32,768 messages) and prints nanoseconds per message, for a quick look.

use std::hint::black_box;
use std::time::Instant;

use kbench::measure::{now_us, ConsumerMeter, ProducerMeter};
use kbench::scenario::{Keys, PayloadKind};
use kbench::workload::consumer::{record_batch, Consumed, POLL_BATCH};
use kbench::workload::payload::{write_header, Check, Filler, KeyChooser, HEADER};
use kbench::workload::producer::record_ack;
use kbench::workload::ring::PayloadRing;

const SIZE: usize = 1024;
const RUN_TAG: u32 = 0x5eed_cafe;
const PRODUCERS: u32 = 16;
const PARTITIONS: i32 = 16;

/// Messages the ack and consume phases can read back (built up front).
const SAMPLE: u64 = 32_768;

/// Producer index and sequence of the n-th message: 16 producers taking turns.
fn identity(n: u64) -> (u32, u64) {
    ((n % u64::from(PRODUCERS)) as u32, n / u64::from(PRODUCERS))
}

fn run(phase: &str, messages: u64, repeat: u32) -> Result<(), String> {
    let filler = Filler::new(PayloadKind::Random, 1.0, SIZE, 1);
    let mut keys = KeyChooser::new(Keys::None, 0, PARTITIONS);
    let mut buf = vec![0u8; SIZE];
    // One meter per producer, as each producer task has.
    let producers: Vec<ProducerMeter> = (0..PRODUCERS).map(|_| ProducerMeter::default()).collect();
    // One ring per producer, of one period (the smallest a producer gets).
    let rings: Vec<PayloadRing> = if phase == "produce" || phase == "ack" {
        (0..PRODUCERS)
            .map(|p| {
                PayloadRing::new(&filler, p, PRODUCERS, SIZE, 1 << 20, u64::MAX)
                    .ok_or_else(|| "hot_path: no ring for 1 KiB messages".to_string())
            })
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let consumer = ConsumerMeter::default();
    let check = Check::new(RUN_TAG);
    // The messages the ack and consume phases read back, one per message: built before the
    // loop whatever the count, so building them cancels out of the guard's difference.
    let sample: Vec<Vec<u8>> = if phase == "ack" || phase == "consume" {
        (0..SAMPLE)
            .map(|n| {
                let mut m = vec![0u8; SIZE];
                let (p, seq) = identity(n);
                filler.build(&mut m, RUN_TAG, p, seq, now_us());
                m
            })
            .collect()
    } else {
        Vec::new()
    };
    if (phase == "ack" || phase == "consume") && messages > SAMPLE {
        return Err(format!("hot_path: {phase} runs at most {SAMPLE} messages"));
    }
    let sent_us = now_us();
    for n in 0..messages {
        let (p, seq) = identity(n);
        for _ in 0..repeat {
            match phase {
                "produce" => {
                    let ring = &rings[p as usize];
                    let Some((slot, msg)) = ring.claim(seq) else {
                        return Err(format!("hot_path: ring buffer of {seq} busy"));
                    };
                    filler.build_header(msg, RUN_TAG, p, seq, sent_us + n);
                    let (key, _) = keys.choose(p, seq);
                    producers[p as usize].sent((SIZE + key.map_or(0, <[u8]>::len)) as u64);
                    black_box(ring.slot_ptr(slot));
                    ring.release_slot(slot);
                }
                "produce-copy" => {
                    filler.build(&mut buf, RUN_TAG, p, seq, sent_us + n);
                    let (key, _) = keys.choose(p, seq);
                    producers[p as usize].sent((SIZE + key.map_or(0, <[u8]>::len)) as u64);
                    black_box(&buf);
                }
                "produce-copy-and-seal" => {
                    buf[HEADER..].copy_from_slice(filler.body(p, seq));
                    write_header(&mut buf, RUN_TAG, p, seq, sent_us + n);
                    let (key, _) = keys.choose(p, seq);
                    producers[p as usize].sent((SIZE + key.map_or(0, <[u8]>::len)) as u64);
                    black_box(&buf);
                }
                "ack" => {
                    let m = &sample[n as usize];
                    let partition = (seq % PARTITIONS as u64) as i32;
                    record_ack(&producers[p as usize], p, RUN_TAG, m, 0, partition, now_us(), 0);
                    rings[p as usize].release(m.as_ptr());
                }
                "consume" => {
                    // A batch starts at every POLL_BATCH-th message and covers the next ones.
                    if n % POLL_BATCH as u64 != 0 {
                        continue;
                    }
                    let end = messages.min(n + POLL_BATCH as u64);
                    let batch = (n..end).map(|i| {
                        let seq = identity(i).1;
                        Consumed {
                            payload: &sample[i as usize],
                            key_len: 0,
                            partition: (seq % PARTITIONS as u64) as i32,
                            offset: seq as i64,
                        }
                    });
                    record_batch(&check, &consumer, batch, now_us(), 0);
                }
                other => return Err(format!("hot_path: unknown phase {other:?} (produce, produce-copy, produce-copy-and-seal, ack, consume)")),
            }
        }
    }
    black_box((&producers, &consumer));
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let result = if args.is_empty() {
        // `cargo bench`: every phase natively, ns per message.
        [
            "produce",
            "produce-copy",
            "produce-copy-and-seal",
            "ack",
            "consume",
        ]
        .iter()
        .try_for_each(|phase| {
            let n = SAMPLE;
            let t = Instant::now();
            run(phase, n, 1)?;
            println!(
                "{phase:>22}: {:.0} ns/message",
                t.elapsed().as_nanos() as f64 / n as f64
            );
            Ok(())
        })
    } else {
        let parsed = (|| {
            let phase = args.first()?.clone();
            let messages = args.get(1)?.parse().ok()?;
            let repeat = args.get(2).map_or(Some(1), |r| r.parse().ok())?;
            Some((phase, messages, repeat))
        })();
        match parsed {
            Some((phase, messages, repeat)) => run(&phase, messages, repeat),
            None => Err(format!(
                "hot_path: usage: hot_path PHASE MESSAGES [REPEAT], got {args:?}"
            )),
        }
    };
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(2);
    }
}

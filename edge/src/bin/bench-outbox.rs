//! Benchmark of the edge outbox (`parkwatch_edge::outbox`).
//!
//! Measures, side by side in one run:
//! - append, send (`next_unsent`) and ack rates, in records/s and MB/s, for
//!   200-byte alarm-sized and 20 KB telemetry-batch-sized records, with the
//!   fsync policies `Always`, `Batch` (default) and `Never`;
//! - the replay of the backlog a 32-camera box builds during a 10-minute
//!   outage: time to hand out every unsent record, in the same process and
//!   after a restart (recovery scan plus reads from disk).
//!
//! Run: `cargo run --release -p parkwatch-edge --bin bench-outbox`
//! (`-- --dir DIR` to measure another file system, `--seconds S` for the
//! time spent appending per case, default 2).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parkwatch_edge::outbox::{FsyncPolicy, Outbox, OutboxOptions, RecordClass};

const MB: f64 = 1_000_000.0;

fn main() -> anyhow::Result<()> {
    let mut base = std::env::temp_dir();
    let mut seconds = 2.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => base = PathBuf::from(args.next().context("--dir needs a path")?),
            "--seconds" => {
                seconds = args
                    .next()
                    .context("--seconds needs a number")?
                    .parse()
                    .context("--seconds needs a number")?;
            }
            "-h" | "--help" => {
                println!("bench-outbox [--dir DIR] [--seconds S]");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let root = base.join(format!("parkwatch-bench-outbox-{}", std::process::id()));
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let result = run(&root, Duration::from_secs_f64(seconds));
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn run(root: &Path, budget: Duration) -> anyhow::Result<()> {
    println!(
        "outbox benchmark in {} ({} s of appends per case)\n",
        root.display(),
        budget.as_secs_f64()
    );
    println!(
        "| record | fsync | appended | append rec/s | append MB/s | send rec/s | ack rec/s (one ack per record) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (label, class, topic, size) in [
        ("alarm 200 B", RecordClass::Alarm, "alarms", 200usize),
        (
            "telemetry 20 KB",
            RecordClass::Telemetry,
            "telemetry",
            20_000,
        ),
    ] {
        for (pname, policy) in [
            ("always", FsyncPolicy::Always),
            ("batch", FsyncPolicy::default()),
            ("never", FsyncPolicy::Never),
        ] {
            let dir = root.join(format!("{topic}-{pname}"));
            let r = case(&dir, policy, class, topic, size, budget)?;
            println!(
                "| {label} | {pname} | {} | {:.0} | {:.1} | {:.0} | {:.0} |",
                r.n,
                r.append_rps,
                r.append_rps * size as f64 / MB,
                r.send_rps,
                r.ack_rps
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    println!();
    let (rate, per) = raw_fsync(&root.join("raw"), budget.min(Duration::from_secs(1)))?;
    println!(
        "file system baseline, outside the outbox: write(200 B) + fdatasync: {rate:.0}/s ({:.2} ms each)\n",
        per * 1e3
    );
    outage(&root.join("outage"))
}

/// What one synced small write costs on this file system: the bound of
/// `FsyncPolicy::Always`.
fn raw_fsync(path: &Path, budget: Duration) -> anyhow::Result<(f64, f64)> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    let buf = [0x5au8; 200];
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < budget {
        f.write_all(&buf)?;
        f.sync_data()?;
        n += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(path);
    Ok((n as f64 / secs, secs / n as f64))
}

struct CaseResult {
    n: u64,
    append_rps: f64,
    send_rps: f64,
    ack_rps: f64,
}

fn case(
    dir: &Path,
    fsync: FsyncPolicy,
    class: RecordClass,
    topic: &str,
    size: usize,
    budget: Duration,
) -> anyhow::Result<CaseResult> {
    let opts = OutboxOptions {
        fsync,
        max_bytes: 4 << 30,
        ..OutboxOptions::default()
    };
    // Stay well inside the budget so nothing is dropped.
    let cap = (1u64 << 30) / size as u64;
    let (mut ob, _) = Outbox::open(dir, opts)?;
    let template = vec![0x5au8; size];
    let t = Instant::now();
    let mut n = 0u64;
    while n < cap && (!n.is_multiple_of(64) || t.elapsed() < budget) {
        ob.append_with(class, topic, |seq| {
            let mut p = template.clone();
            p[..8].copy_from_slice(&seq.to_le_bytes());
            p
        })?;
        n += 1;
    }
    let append = t.elapsed();

    let t = Instant::now();
    let now = Instant::now();
    let mut seqs = Vec::with_capacity(n as usize);
    while let Some(r) = ob.next_unsent(now) {
        seqs.push(r.seq);
    }
    let send = t.elapsed();
    if seqs.len() as u64 != n {
        bail!("sent {} of {n} records", seqs.len());
    }

    let t = Instant::now();
    for s in &seqs {
        ob.ack(&[(*s, *s)]);
    }
    let ack = t.elapsed();
    if ob.stats().pending_records != 0 {
        bail!("records left after acking all");
    }
    ob.close()?;
    Ok(CaseResult {
        n,
        append_rps: n as f64 / append.as_secs_f64(),
        send_rps: n as f64 / send.as_secs_f64(),
        ack_rps: n as f64 / ack.as_secs_f64(),
    })
}

/// The backlog of a 10-minute outage of a 32-camera box.
fn outage(dir: &Path) -> anyhow::Result<()> {
    const CAMERAS: u64 = 32;
    const MINUTES: u64 = 10;
    const ALARMS_PER_CAMERA_MINUTE: u64 = 2;
    const EVENTS_PER_ALARM: u64 = 3; // new, update, end
    const ALARM_EVENT_BYTES: usize = 600;
    const SNAPSHOT_BYTES: usize = 150_000;
    const TELEMETRY_BATCHES_PER_TICK: u64 = 4; // every 10 s
    const TELEMETRY_BATCH_BYTES: usize = 20_000;
    const STATUS_BYTES: usize = 1_000;

    let alarms = CAMERAS * MINUTES * ALARMS_PER_CAMERA_MINUTE;
    let ticks = MINUTES * 6;
    println!(
        "10-minute outage of a 32-camera box: {alarms} alarms ({} events of {ALARM_EVENT_BYTES} B, \
         one {SNAPSHOT_BYTES} B snapshot each), {} telemetry batches of {TELEMETRY_BATCH_BYTES} B \
         ({TELEMETRY_BATCHES_PER_TICK} every 10 s), {MINUTES} status records of {STATUS_BYTES} B",
        alarms * EVENTS_PER_ALARM,
        ticks * TELEMETRY_BATCHES_PER_TICK
    );

    let (mut ob, _) = Outbox::open(dir, OutboxOptions::default())?;
    let snapshot = vec![0xd8u8; SNAPSHOT_BYTES];
    let mut records = 0u64;
    let mut bytes = 0u64;
    let mut add = |ob: &mut Outbox, class: RecordClass, topic: &str, size: usize| {
        let r = ob.append_with(class, topic, |seq| {
            let mut p = if size == SNAPSHOT_BYTES {
                snapshot.clone()
            } else {
                vec![b'x'; size]
            };
            p[..8].copy_from_slice(&seq.to_le_bytes());
            p
        });
        records += 1;
        bytes += size as u64;
        r.map(|_| ())
    };
    let t = Instant::now();
    // Second by second, in the order a box would produce them.
    let alarm_every_s = (MINUTES * 60) as f64 / alarms as f64;
    let mut next_alarm = 0.0f64;
    let mut alarm_id = 0u64;
    for s in 0..MINUTES * 60 {
        while next_alarm < (s + 1) as f64 {
            alarm_id += 1;
            add(&mut ob, RecordClass::Alarm, "alarms", ALARM_EVENT_BYTES)?;
            add(
                &mut ob,
                RecordClass::Snapshot,
                &format!("snapshots/a-{alarm_id}"),
                SNAPSHOT_BYTES,
            )?;
            for _ in 1..EVENTS_PER_ALARM {
                add(&mut ob, RecordClass::Alarm, "alarms", ALARM_EVENT_BYTES)?;
            }
            next_alarm += alarm_every_s;
        }
        if s.is_multiple_of(10) {
            for _ in 0..TELEMETRY_BATCHES_PER_TICK {
                add(
                    &mut ob,
                    RecordClass::Telemetry,
                    "telemetry",
                    TELEMETRY_BATCH_BYTES,
                )?;
            }
        }
        if s.is_multiple_of(60) {
            add(&mut ob, RecordClass::Status, "status", STATUS_BYTES)?;
        }
    }
    let fill = t.elapsed();
    println!(
        "backlog: {records} records, {:.1} MB payload, written in {:.2} s (fsync batch)",
        bytes as f64 / MB,
        fill.as_secs_f64()
    );

    println!("\n| replay | records | MB | time | rec/s | MB/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    let (n, b, d) = replay(&mut ob)?;
    print_replay("same process (32 MiB cache, rest from disk)", n, b, d);
    ob.close()?;

    let t = Instant::now();
    let (mut ob, report) = Outbox::open(dir, OutboxOptions::default())?;
    let open = t.elapsed();
    println!(
        "| restart: open + validate every record | {} | {:.1} | {:.3} s | {:.0} | {:.0} |",
        report.recovered_records,
        report.recovered_bytes as f64 / MB,
        open.as_secs_f64(),
        report.recovered_records as f64 / open.as_secs_f64(),
        report.recovered_bytes as f64 / MB / open.as_secs_f64()
    );
    let (n, b, d) = replay(&mut ob)?;
    print_replay("restart: replay from disk (page cache warm)", n, b, d);
    ob.close()?;
    Ok(())
}

fn replay(ob: &mut Outbox) -> anyhow::Result<(u64, u64, Duration)> {
    let t = Instant::now();
    let now = Instant::now();
    let (mut n, mut b) = (0u64, 0u64);
    let mut last_rank = 0;
    while let Some(r) = ob.next_unsent(now) {
        let rank = match r.class {
            RecordClass::Alarm | RecordClass::Status => 0,
            RecordClass::Snapshot => 1,
            RecordClass::Telemetry => 2,
        };
        if rank < last_rank {
            bail!(
                "seq {} ({}) came after a lower-priority record",
                r.seq,
                r.class
            );
        }
        last_rank = rank;
        n += 1;
        b += r.payload.len() as u64;
    }
    Ok((n, b, t.elapsed()))
}

fn print_replay(label: &str, n: u64, b: u64, d: Duration) {
    println!(
        "| {label} | {n} | {:.1} | {:.3} s | {:.0} | {:.0} |",
        b as f64 / MB,
        d.as_secs_f64(),
        n as f64 / d.as_secs_f64(),
        b as f64 / MB / d.as_secs_f64()
    );
}

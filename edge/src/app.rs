//! `parkwatch-edge run`: wires the box together and owns its shutdown.
//!
//! ```text
//! camera --retina--> source task --bounded--> decode thread --> analytics
//! box, cameras, sensors ----------------> telemetry batcher --+
//! alarms ------------------------------------------------------+--> outbox --> uplink --> MQTT
//! ```
//!
//! One shutdown path: the first SIGINT/SIGTERM flips a watch channel that
//! every task selects on; sources stop, the telemetry batcher writes a last
//! batch to the outbox, the uplink says offline and disconnects; whatever is
//! unacknowledged stays in the outbox for the next start. A second signal
//! exits at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use parkwatch_config::EdgeConfig;
use parkwatch_edge_logic::manifest::ModelManifest;
use parkwatch_edge_logic::rules::RuleOptions;
use parkwatch_protocol::{
    CameraStatus, EdgeState, EdgeStatus, MAX_POINTS_PER_BATCH, ModelRef, SCHEMA_VERSION,
    TelemetryBatch, encode_telemetry,
};
use tokio::sync::{Notify, mpsc, watch};
use tracing::{error, info, warn};

use crate::analytics::live::{AnalyticsTask, DetectSink, EvidenceStore, LiveCamera, OutboxSink};
use crate::analytics::{AlarmSink as _, CameraAnalytics, Emitter};
use crate::camera::CameraStats;
use crate::decode::{FrameSink, NullSink, spawn_decoder};
use crate::detect::{DetectResult, DetectorPool, OrtDetectorOptions, PoolConfig};
use crate::health::HealthSampler;
use crate::metrics::{self, EdgeMetrics};
use crate::outbox::{Outbox, OutboxOptions, RecordClass};
use crate::sensors::{SensorAlarm, spawn_sensors_with_stats};
use crate::source::StreamEvent;
use crate::source::{SourceSpec, run_source};
use crate::telemetry::{PointBuffer, camera_points};
use crate::uplink::{UplinkSpec, run_uplink};
use parkwatch_durable::clock::now_ms;

/// Compressed frames buffered between a source and its decoder.
const DECODE_QUEUE: usize = 16;

/// Runs the box until a shutdown signal.
pub async fn run(config: EdgeConfig) -> anyhow::Result<()> {
    let started_at_ms = now_ms();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let metrics = Arc::new(EdgeMetrics::default());

    let outbox_dir = config.outbox_dir();
    let options = OutboxOptions {
        max_bytes: config.outbox.max_bytes,
        fsync: config.outbox.fsync.into(),
        ..OutboxOptions::default()
    };
    let (outbox, report) = Outbox::open(&outbox_dir, options)
        .with_context(|| format!("opening the outbox at {}", outbox_dir.display()))?;
    for (file, offset, reason) in &report.truncated {
        warn!(file = %file.display(), offset, reason = %reason, "Outbox: torn or corrupt tail truncated.");
    }
    info!(dir = %outbox_dir.display(), pending = report.recovered_records, "Outbox open.");
    let outbox = Arc::new(Mutex::new(outbox));
    let wake = Arc::new(Notify::new());

    // Detection: one pool for every camera with rules.
    let (results_tx, results_rx) = mpsc::channel(64);
    let (pool, model) = if config
        .cameras
        .iter()
        .any(|c| c.enabled && !c.rules.is_empty())
    {
        let (pool, model) = start_detector_pool(&config, results_tx)?;
        (Some(Arc::new(pool)), Some(model))
    } else {
        drop(results_tx);
        (None, None)
    };

    // Cameras.
    let evidence = Arc::new(EvidenceStore::default());
    let (stream_tx, stream_rx) = mpsc::channel(256);
    let mut live_cameras = HashMap::new();
    let mut cameras = Vec::new();
    let mut tasks = Vec::new();
    let min_score = config.detector.min_score as f32;
    for cam in config.cameras.iter().filter(|c| c.enabled) {
        let stats = CameraStats::new(&cam.id, started_at_ms);
        let id: Arc<str> = Arc::from(cam.id.as_str());
        let spec = SourceSpec::new(&cam.id, &cam.url, cam.stale_after(), cam.keyframes_only)?;
        let (frame_tx, frame_rx) = std::sync::mpsc::sync_channel(DECODE_QUEUE);
        let make_sink: Box<dyn FnOnce() -> Box<dyn FrameSink> + Send> =
            match (&pool, cam.rules.is_empty()) {
                (Some(pool), false) => {
                    let (id, stats, pool, evidence) =
                        (id.clone(), stats.clone(), pool.clone(), evidence.clone());
                    let (fps, recheck) = (cam.detect_fps, cam.static_recheck());
                    Box::new(move || {
                        Box::new(DetectSink::new(
                            id,
                            stats,
                            pool,
                            evidence,
                            fps,
                            recheck.as_millis() as i64,
                        )) as Box<dyn FrameSink>
                    })
                }
                _ => Box::new(|| Box::new(NullSink) as Box<dyn FrameSink>),
            };
        spawn_decoder(&cam.id, stats.clone(), frame_rx, make_sink)
            .with_context(|| format!("starting the decode thread of camera {}", cam.id))?;
        let (ev_tx, mut ev_rx) = mpsc::channel::<StreamEvent>(16);
        tasks.push(tokio::spawn(run_source(
            spec,
            stats.clone(),
            frame_tx,
            ev_tx,
            shutdown_rx.clone(),
        )));
        // Tag each camera's stream events with its id for the analytics task.
        let (fwd, fwd_id) = (stream_tx.clone(), id.clone());
        tokio::spawn(async move {
            while let Some(ev) = ev_rx.recv().await {
                if fwd.send((fwd_id.clone(), ev)).await.is_err() {
                    return;
                }
            }
        });
        let analytics =
            CameraAnalytics::new(&config.edge_id, cam, min_score, RuleOptions::default())
                .with_context(|| format!("camera {}", cam.id))?;
        live_cameras.insert(
            id,
            LiveCamera {
                analytics,
                emitter: Emitter::new(&config.site, &config.edge_id, &cam.id, model.clone()),
                stats: stats.clone(),
            },
        );
        info!(camera = %cam.id, url = %cam.redacted_url(), rules = cam.rules.len(), "Camera configured.");
        cameras.push(stats);
    }
    drop(stream_tx);
    let analytics_task = tokio::spawn(
        AnalyticsTask {
            cameras: live_cameras,
            results: results_rx,
            stream_events: stream_rx,
            evidence,
            outbox: outbox.clone(),
            wake: wake.clone(),
            metrics: metrics.clone(),
        }
        .run(shutdown_rx.clone()),
    );
    let cameras = Arc::new(cameras);

    // Status, as the uplink publishes it.
    let status = {
        let cameras = cameras.clone();
        let site = config.site.clone();
        let edge = config.edge_id.clone();
        Arc::new(move |online: bool| EdgeStatus {
            v: SCHEMA_VERSION,
            site: site.clone(),
            edge: edge.clone(),
            seq: 0,
            state: if online {
                EdgeState::Online
            } else {
                EdgeState::Offline
            },
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at_ms,
            at_ms: now_ms(),
            cameras: cameras
                .iter()
                .map(|c| CameraStatus {
                    id: c.id.clone(),
                    state: c.state(),
                    since_ms: c.state_since_ms(),
                })
                .collect(),
        })
    };

    // Uplink.
    let uplink = UplinkSpec {
        site: config.site.clone(),
        edge: config.edge_id.clone(),
        prefix: config.mqtt.topic_prefix.clone(),
        host: config.mqtt.host.clone(),
        port: config.mqtt.port,
        username: config.mqtt.username.clone(),
        password: config.mqtt_password().map_err(|p| anyhow::anyhow!("{p}"))?,
        keepalive: Duration::from_secs(config.mqtt.keepalive_secs),
        tls: config
            .mqtt_ca_file()
            .map(|ca| crate::uplink::TlsSettings::load(&ca))
            .transpose()?,
    };
    let uplink_task = tokio::spawn(run_uplink(
        uplink,
        outbox.clone(),
        wake.clone(),
        status,
        metrics.clone(),
        shutdown_rx.clone(),
    ));

    // Sensors: readings into telemetry, threshold and offline alarms into
    // the outbox.
    let sensor_points = PointBuffer::new(100_000);
    let (sensor_alarm_tx, mut sensor_alarm_rx) = mpsc::channel::<SensorAlarm>(256);
    let sensors = spawn_sensors_with_stats(
        &config.edge_id,
        &config.sensors,
        sensor_points.clone(),
        sensor_alarm_tx,
        shutdown_rx.clone(),
    );
    let sensor_stats = Arc::new(sensors.stats);
    tasks.extend(sensors.handles);
    {
        let (outbox, wake, metrics) = (outbox.clone(), wake.clone(), metrics.clone());
        let (site, edge) = (config.site.clone(), config.edge_id.clone());
        tokio::spawn(async move {
            while let Some(alarm) = sensor_alarm_rx.recv().await {
                let mut sink = OutboxSink {
                    outbox: &outbox,
                    metrics: &metrics,
                };
                match sink.alarm(&mut |seq| alarm.to_event(&site, &edge, seq)) {
                    Ok(ev) => info!(
                        sensor = %alarm.sensor, alarm = %ev.alarm_id, seq = ev.seq, event = ev.event.as_str(),
                        kind = ev.kind.as_str(), value = ?ev.value, "Alarm."
                    ),
                    Err(e) => warn!(sensor = %alarm.sensor, err = %e, "Sensor alarm not queued."),
                }
                wake.notify_one();
            }
        });
    }

    // Telemetry.
    let telemetry_task = tokio::spawn(run_telemetry(
        TelemetryCtx {
            site: config.site.clone(),
            edge: config.edge_id.clone(),
            interval: config.telemetry.interval(),
            cameras: cameras.clone(),
            sensor_points,
            outbox: outbox.clone(),
            wake: wake.clone(),
            metrics: metrics.clone(),
            health: HealthSampler::new(outbox_dir.clone()),
        },
        shutdown_rx.clone(),
    ));

    // Metrics.
    if let Some(listener) = metrics::bind(&config.metrics.listen)
        .await
        .with_context(|| format!("binding metrics.listen = {:?}", config.metrics.listen))?
    {
        tokio::spawn(metrics::serve(
            listener,
            metrics.clone(),
            cameras.clone(),
            sensor_stats.clone(),
            outbox.clone(),
            shutdown_rx.clone(),
        ));
    }

    info!(edge = %config.edge_id, site = %config.site, cameras = cameras.len(), "Edge running.");
    wait_for_signal().await;
    info!("Shutting down (a second signal exits at once).");
    let _ = shutdown_tx.send(true);
    tokio::spawn(async {
        wait_for_signal().await;
        error!("Second signal: exiting now.");
        std::process::exit(130);
    });
    let grace = async {
        let _ = analytics_task.await;
        let _ = telemetry_task.await;
        let _ = uplink_task.await;
        for t in tasks {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), grace)
        .await
        .is_err()
    {
        warn!("Shutdown grace time ran out.");
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

struct TelemetryCtx {
    site: String,
    edge: String,
    interval: Duration,
    cameras: Arc<Vec<Arc<CameraStats>>>,
    sensor_points: Arc<PointBuffer>,
    outbox: Arc<Mutex<Outbox>>,
    wake: Arc<Notify>,
    metrics: Arc<EdgeMetrics>,
    health: HealthSampler,
}

async fn run_telemetry(mut ctx: TelemetryCtx, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(ctx.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.changed() => true,
        };
        flush_telemetry(&mut ctx);
        if last {
            return;
        }
    }
}

fn flush_telemetry(ctx: &mut TelemetryCtx) {
    let ts = now_ms();
    let mut points = camera_points(&ctx.cameras, ts);
    let (sensor, dropped) = ctx.sensor_points.take();
    points.extend(sensor);
    {
        let outbox = ctx.outbox.lock().unwrap_or_else(|e| e.into_inner());
        let stats = outbox.stats();
        ctx.metrics.observe_outbox(&stats);
        points.push(crate::health::outbox_point(&stats, dropped, ts));
    }
    points.extend(ctx.health.sample(ts));
    for chunk in points.chunks(MAX_POINTS_PER_BATCH) {
        let mut outbox = ctx.outbox.lock().unwrap_or_else(|e| e.into_inner());
        let result = outbox.append_with(RecordClass::Telemetry, "telemetry", |seq| {
            encode_telemetry(&TelemetryBatch {
                v: SCHEMA_VERSION,
                site: ctx.site.clone(),
                edge: ctx.edge.clone(),
                seq,
                created_at_ms: ts,
                points: chunk.to_vec(),
            })
        });
        match result {
            Ok(_) => ctx.metrics.telemetry_batches.inc(),
            Err(e) => warn!(err = %e, "Telemetry batch not queued."),
        }
    }
    ctx.wake.notify_one();
}

/// Loads the model named by the configuration and starts the box's
/// detector pool; results go to `results`.
fn start_detector_pool(
    config: &EdgeConfig,
    results: mpsc::Sender<DetectResult>,
) -> anyhow::Result<(DetectorPool, ModelRef)> {
    let explicit = config.onnxruntime.as_ref().map(|p| config.resolve(p));
    let runtime = crate::detect::runtime::init(explicit.as_deref())
        .context("loading ONNX Runtime (see the `onnxruntime` key in docs/configuration.md)")?;
    let manifest_path = config.model_manifest_path();
    let manifest = ModelManifest::load(&manifest_path)
        .with_context(|| format!("loading the model manifest {}", manifest_path.display()))?;
    let min_score = config.detector.min_score as f32;
    let pool_config = PoolConfig {
        workers: 1,
        detector: OrtDetectorOptions {
            intra_threads: config.detector.threads.max(1),
            // The tracker takes low-score detections too (ByteTrack's second
            // stage); rules apply their own minimum score.
            score_threshold: Some((min_score * 0.5).min(manifest.score_threshold)),
            ..OrtDetectorOptions::default()
        },
    };
    let pool = DetectorPool::from_manifest(runtime, &manifest, &pool_config, results)
        .with_context(|| format!("starting the detector for {}", manifest.name))?;
    info!(
        model = %manifest.name, version = %manifest.version, library = %runtime.library().display(),
        threads = pool_config.detector.intra_threads, "Detector ready."
    );
    Ok((
        pool,
        ModelRef {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
        },
    ))
}

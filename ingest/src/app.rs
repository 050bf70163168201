//! Wiring: starts every part of ingest and runs the one shutdown path.
//!
//! Start order: HTTP listener (bound first so a taken port fails at once),
//! data dir, incident store (when `site_dir` is set: migrations applied),
//! embedded broker (if any), overdue checker, time-series writer, acker,
//! two MQTT links (urgent records and telemetry, see
//! [`crate::consumer`]), each with its poller and processor, HTTP server
//! (with `/api/v1` when incidents are on).
//!
//! Shutdown, when `shutdown` resolves (the first SIGINT/SIGTERM; `main`
//! exits at once on a second one):
//! 1. the processor stops taking messages (unprocessed ones are not acked;
//!    edges resend them) and drops the writer's queue sender; live streams
//!    (`/api/v1/alarms/stream`) and the overdue checker end;
//! 2. the writer flushes what it holds and the acker publishes pending acks,
//!    both within `shutdown_grace_ms`; past that the writer gives up and
//!    unwritten batches stay unacknowledged;
//! 3. the MQTT client disconnects after the acks are queued, so they go out
//!    first;
//! 4. the HTTP server stops.
//!
//! If the embedded broker's thread ends, ingest shuts down the same way and
//! [`run`] returns [`AppError::BrokerStopped`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::acks::run_acker;
use crate::broker::{EmbeddedBroker, INTERNAL_USER};
use crate::config::{BrokerMode, LoadedConfig};
use crate::consumer::{
    Classifier, MqttAckPublisher, MqttSettings, Routes, TELEMETRY_CLIENT_SUFFIX, run_poller,
    run_processor, shared, split_urgent,
};
use crate::edges::EdgeRegistry;
use crate::metrics::Metrics;
use crate::writer::{Backoff, InfluxSink, Writer, WriterSettings};

/// How often delivery acks are published, per edge at most.
pub const ACK_INTERVAL: Duration = Duration::from_millis(200);

/// Why ingest could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The HTTP server.
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// The embedded broker could not start.
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
    /// The embedded broker's thread ended while ingest ran.
    #[error("the embedded MQTT broker stopped")]
    BrokerStopped,
    /// The time-series client could not be built.
    #[error("time-series client: {0}")]
    Sink(#[from] crate::writer::WriteError),
    /// The data dir cannot be created.
    #[error("cannot create data_dir {path}: {source}")]
    DataDir {
        /// The folder.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An invalid backoff (cannot happen after config validation).
    #[error(transparent)]
    Backoff(#[from] crate::writer::BackoffError),
    /// The incident store could not be opened.
    #[error("incidents: {0}")]
    Incidents(#[from] crate::incidents::OpenError),
    /// The spool, the dedup record or the dead-letter store could not be
    /// opened.
    #[error(transparent)]
    Storage(#[from] crate::writer::StorageError),
}

/// The incident store's settings from the configuration and its secrets.
pub fn store_settings(loaded: &LoadedConfig) -> crate::incidents::StoreSettings {
    let cfg = &loaded.config;
    match cfg.store.kind {
        crate::incidents::config::StoreKind::Sqlite => cfg
            .store
            .settings(&cfg.data_dir)
            .unwrap_or_else(|_| crate::incidents::StoreSettings::Sqlite {
                path: cfg.data_dir.join("incidents.sqlite"),
                readers: cfg.store.max_connections,
            }),
        crate::incidents::config::StoreKind::Postgres => {
            crate::incidents::StoreSettings::Postgres {
                url: loaded
                    .secrets
                    .store_url
                    .as_ref()
                    .map(|s| s.expose().to_owned())
                    .unwrap_or_default(),
                max_connections: cfg.store.max_connections,
            }
        }
    }
}

/// The consumer's checks for `loaded`: with the embedded broker
/// authenticating edges, only configured edges may appear in topics.
pub fn classifier(loaded: &LoadedConfig) -> Classifier {
    let cfg = &loaded.config;
    let c = Classifier::new(&cfg.topic_prefix, cfg.site.as_deref());
    if cfg.broker.mode == BrokerMode::Embedded && !cfg.broker.allow_anonymous {
        c.with_known_edges(cfg.broker.edges.iter().map(|e| e.edge.clone()))
    } else {
        c
    }
}

/// Runs ingest until `shutdown` resolves, then shuts down in order.
pub async fn run(
    loaded: LoadedConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    let cfg = &loaded.config;
    let embedded = cfg.broker.mode == BrokerMode::Embedded;
    let metrics = Arc::new(Metrics::new(cfg.timeseries.queue_batches, embedded));
    let edges = Arc::new(EdgeRegistry::default());

    let listener = crate::http::bind(cfg.http.listen).await?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| AppError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;

    let deadletters = crate::deadletter::DeadLetters::start(
        &cfg.data_dir.join("deadletter"),
        &cfg.deadletters,
        metrics.clone(),
    )
    .map_err(crate::writer::StorageError::from)?;
    let durable = crate::writer::Durable::open(
        &cfg.data_dir,
        cfg.timeseries.spool_max_bytes,
        Duration::from_millis(cfg.timeseries.spool_after_ms),
    )?;

    let incidents = match &loaded.site {
        Some(site) => {
            let settings = store_settings(&loaded);
            let blob_dir = cfg.incidents.blob_dir(&cfg.data_dir);
            let svc = crate::incidents::open_site(
                site.clone(),
                &settings,
                &blob_dir,
                Arc::new(crate::incidents::SystemClock),
            )
            .await?;
            info!(store = ?settings, blobs = %blob_dir.display(), site = %site.info.id, "Incident store open.");
            Some(svc)
        }
        None => None,
    };

    let subscriptions = parkwatch_protocol::ingest_subscriptions(&cfg.topic_prefix);
    let (mqtt, broker) = if embedded {
        let broker =
            EmbeddedBroker::start(&cfg.broker, &loaded.secrets.edge_passwords, metrics.clone())?;
        let settings = MqttSettings {
            host: broker.connect_addr.ip().to_string(),
            port: broker.connect_addr.port(),
            client_id: crate::broker::INTERNAL_CLIENT_ID.to_owned(),
            username: Some(INTERNAL_USER.to_owned()),
            password: Some(broker.internal_password.clone()),
            keep_alive: Duration::from_secs(cfg.broker.keep_alive_secs),
            max_packet_bytes: cfg.broker.max_payload_bytes + 64 * 1024,
            subscriptions,
        };
        (settings, Some(broker))
    } else {
        let settings = MqttSettings {
            host: cfg.broker.host.clone().unwrap_or_default(),
            port: cfg.broker.port(),
            client_id: cfg.broker.client_id().to_owned(),
            username: cfg.broker.username.clone(),
            password: loaded.secrets.broker_password.clone(),
            keep_alive: Duration::from_secs(cfg.broker.keep_alive_secs),
            max_packet_bytes: cfg.broker.max_payload_bytes + 64 * 1024,
            subscriptions: shared(subscriptions, cfg.broker.shared_group()),
        };
        (settings, None)
    };

    let ts = &cfg.timeseries;
    let sink = InfluxSink::new(
        &ts.url,
        &ts.org,
        &ts.bucket,
        loaded.secrets.tsdb_token.expose(),
    )?;
    let settings = WriterSettings {
        batch_points: ts.batch_points,
        flush_interval: Duration::from_millis(ts.flush_interval_ms),
        request_timeout: Duration::from_millis(ts.request_timeout_ms),
        backoff: Backoff::try_new(
            Duration::from_millis(ts.retry_min_ms),
            Duration::from_millis(ts.retry_max_ms),
        )?,
    };

    let (write_tx, write_rx) = mpsc::channel(ts.queue_batches);
    let (ack_tx, ack_rx) = mpsc::channel(1024);
    let (recv_tx, recv_rx) = mpsc::channel(1024);
    let (abort_tx, abort_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (kill_tx, kill_rx) = watch::channel(false);
    let (http_stop_tx, mut http_stop_rx) = watch::channel(false);

    let consumer_acks = ack_tx.clone();
    let (closing_tx, closing_rx) = watch::channel(false);
    let overdue = incidents.as_ref().map(|svc| {
        tokio::spawn(svc.clone().run_overdue_checker(
            Duration::from_secs(cfg.incidents.overdue_check_secs),
            closing_rx.clone(),
        ))
    });
    let mut writer = tokio::spawn(
        Writer::new(sink, settings, metrics.clone(), write_rx, ack_tx, abort_rx)
            .with_durable(durable)
            .with_deadletters(deadletters.clone(), &cfg.topic_prefix)
            .run(),
    );
    // Two connections: status, alarms, snapshots and config acks never
    // queue behind telemetry in the broker (see `consumer`, "Two links").
    let (urgent_subs, telemetry_subs) = split_urgent(mqtt.subscriptions.clone());
    let mqtt_tel = MqttSettings {
        client_id: format!("{}{TELEMETRY_CLIENT_SUFFIX}", mqtt.client_id),
        subscriptions: telemetry_subs,
        ..mqtt.clone()
    };
    let mqtt = MqttSettings {
        subscriptions: urgent_subs,
        ..mqtt
    };
    metrics.set_consumer_links(2);
    let (client, eventloop) = crate::consumer::connect(&mqtt);
    let (tclient, teventloop) = crate::consumer::connect(&mqtt_tel);
    let (trecv_tx, trecv_rx) = mpsc::channel(1024);
    let mut acker = tokio::spawn(run_acker(
        ack_rx,
        MqttAckPublisher(client.clone()),
        cfg.topic_prefix.clone(),
        ACK_INTERVAL,
        metrics.clone(),
    ));
    let epoch = Arc::new(AtomicU64::new(0));
    let tepoch = Arc::new(AtomicU64::new(0));
    let mut poller = tokio::spawn(run_poller(
        eventloop,
        client.clone(),
        mqtt.subscriptions.clone(),
        recv_tx,
        epoch.clone(),
        metrics.clone(),
        kill_rx.clone(),
        0,
    ));
    let mut tpoller = tokio::spawn(run_poller(
        teventloop,
        tclient.clone(),
        mqtt_tel.subscriptions.clone(),
        trecv_tx,
        tepoch.clone(),
        metrics.clone(),
        kill_rx,
        1,
    ));
    let routes = Routes {
        writer: write_tx,
        edges: edges.clone(),
        metrics: metrics.clone(),
        incidents: incidents.clone(),
        acks: consumer_acks,
        deadletters: Some(deadletters.clone()),
    };
    let processor = tokio::spawn(run_processor(
        recv_rx,
        client.clone(),
        epoch,
        classifier(&loaded),
        routes.clone(),
        stop_rx.clone(),
    ));
    let tprocessor = tokio::spawn(run_processor(
        trecv_rx,
        tclient.clone(),
        tepoch,
        classifier(&loaded),
        routes,
        stop_rx,
    ));
    let mut router =
        crate::http::router(metrics.clone()).merge(crate::deadletter::router(deadletters));
    if let Some(svc) = &incidents {
        router = router.nest(
            "/api/v1",
            crate::api::router(crate::api::ApiState {
                incidents: svc.clone(),
                tokens: crate::api::auth::Tokens::new(&cfg.api),
                edges: Some(edges.clone()),
                closing: closing_rx.clone(),
            }),
        );
    }
    let http = tokio::spawn(crate::http::serve(listener, router, async move {
        let _ = http_stop_rx.wait_for(|s| *s).await;
    }));
    info!(
        http = %cfg.http.listen,
        broker = if embedded { "embedded" } else { "external" },
        mqtt = %format!("{}:{}", mqtt.host, mqtt.port),
        timeseries = %ts.url,
        "parkwatch-ingest running."
    );

    let broker_died = async {
        match &broker {
            Some(b) => loop {
                if b.is_finished() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            },
            None => std::future::pending().await,
        }
    };
    let mut result = Ok(());
    tokio::select! {
        () = shutdown => info!("Shutting down: no longer accepting messages."),
        () = broker_died => {
            error!("The embedded MQTT broker stopped; shutting down.");
            result = Err(AppError::BrokerStopped);
        }
    }

    // 1. Stop accepting; end live streams and the overdue checker.
    let _ = stop_tx.send(true);
    let _ = closing_tx.send(true);
    if let Some(t) = overdue {
        let _ = t.await;
    }
    let _ = processor.await;
    let _ = tprocessor.await;
    // 2. Drain the writer and the acker within the grace time.
    let grace = Duration::from_millis(cfg.shutdown_grace_ms);
    let drained = tokio::time::timeout(grace, async {
        let _ = (&mut writer).await;
        let _ = (&mut acker).await;
    })
    .await;
    if drained.is_err() {
        warn!(
            grace_ms = cfg.shutdown_grace_ms,
            "Shutdown grace time over; abandoning unwritten batches."
        );
        let _ = abort_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut writer).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut acker).await;
    }
    // 3. Disconnect after the queued acks.
    let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), tclient.disconnect()).await;
    let pollers = async {
        let _ = (&mut poller).await;
        let _ = (&mut tpoller).await;
    };
    if tokio::time::timeout(Duration::from_secs(2), pollers)
        .await
        .is_err()
    {
        let _ = kill_tx.send(true);
        let _ = poller.await;
        let _ = tpoller.await;
    }
    // 4. HTTP last, so /healthz answers during the drain.
    let _ = http_stop_tx.send(true);
    match http.await {
        Ok(Err(e)) => warn!(err = %e, "HTTP server ended with an error."),
        Err(e) => warn!(err = %e, "HTTP server task failed."),
        Ok(Ok(())) => {}
    }
    info!(
        points_written = metrics.points_written(),
        acks_published = metrics.acks_published(),
        "parkwatch-ingest stopped."
    );
    result
}

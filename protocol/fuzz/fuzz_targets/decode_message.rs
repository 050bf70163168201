//! Feeds arbitrary bytes to the decoder of every topic kind. The first byte
//! picks the kind so the fuzzer can specialise; a crash is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parkwatch_protocol::{TopicKind, decode_message};

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    let kind = match which % 7 {
        0 => TopicKind::Status,
        1 => TopicKind::Alarms,
        2 => TopicKind::Telemetry,
        3 => TopicKind::Snapshot {
            alarm_id: "a1".to_owned(),
        },
        4 => TopicKind::Config,
        5 => TopicKind::ConfigAck,
        _ => TopicKind::Ack,
    };
    if let Err(e) = decode_message(&kind, payload) {
        let _ = (e.reason(), e.to_string());
    }
});

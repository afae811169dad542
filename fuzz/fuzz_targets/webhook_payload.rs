//! Webhook bodies and signature headers from the network never panic the receiver.
#![no_main]

use docbrain_confluence::webhook;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (header, body) = data.split_at(split);
    let header = std::str::from_utf8(header).ok();
    let _ = webhook::verify(b"fuzz-secret", body, header);
    let _ = webhook::parse(body, header, None);
});

//! `seal::open` must never panic on arbitrary input, and must never accept
//! anything that was not sealed with the key (with a fixed key and an
//! attacker-controlled blob, acceptance would be a forgery).
#![no_main]

use libfuzzer_sys::fuzz_target;
use secnet_keys::seal::{open, seal, Kek};
use secnet_keys::secret::Secret32;

fuzz_target!(|data: &[u8]| {
    let kek = Kek::from_secret(Secret32::new([0x42; 32]));
    // Split off a little associated data so both inputs are explored.
    let (aad, blob) = data.split_at(data.len().min(data.first().map_or(0, |b| *b as usize % 8)));
    assert!(
        open(&kek, blob, aad).is_err(),
        "forged sealed blob accepted"
    );

    // Round trip: whatever is sealed opens to itself, and a flipped bit is
    // rejected.
    let mut sealed = seal(&kek, blob, aad);
    let opened = open(&kek, &sealed, aad).expect("round trip");
    assert_eq!(opened.expose(), blob);
    if !sealed.is_empty() {
        let i = blob.len() % (sealed.len() * 8);
        sealed[i / 8] ^= 1 << (i % 8);
        assert!(open(&kek, &sealed, aad).is_err(), "bit flip accepted");
    }
});

//! Every byte string a peer or a local client can send: decoding must never panic, and a
//! frame that decodes must re-encode to a frame that decodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secnet_api::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((msg, used))) = wire::decode::<secnet_api::LocalRequest>(data) {
        assert!(used <= data.len());
        let again = wire::encode(&msg).expect("re-encode");
        assert!(wire::decode::<secnet_api::LocalRequest>(&again).is_ok());
    }
    let _ = wire::decode::<secnet_control::peer::PeerRequest>(data);
    let _ = wire::decode::<secnet_control::peer::PeerResponse>(data);
});

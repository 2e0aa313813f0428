//! `JoinToken::from_str` must never panic, and whatever it accepts must
//! print back to exactly the (trimmed) input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secnet_keys::token::JoinToken;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = s.parse::<JoinToken>() {
        let printed = token.to_string_secret();
        assert_eq!(printed.as_str(), s.trim());
        let again: JoinToken = printed.parse().expect("a printed token parses");
        assert_eq!(again, token);
    }
});

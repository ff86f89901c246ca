//! Helpers shared by the integration tests. They build UserSigs independently of the crate
//! (plain `STANDARD` base64 plus character replacement, `flate2` at any level, `hmac` directly),
//! so that a bug in the crate's own encoder cannot hide a bug in its decoder.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use flate2::Compression;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The sample key of every official library's tests and READMEs (spec §4.4).
pub const K: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

/// Spec §4.4 vector A in its three encodings.
pub const A_PYTHON: &str = "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkKjIT87NK82CSxSnZiQUFmSlAKUMTAyiAyqVWFGQWpYJkTE1NjRDiJZm5YFFzNPXFmekgG3zKHM1T9D3LzdODi-OKs8vCqpxcAvydnV2SSv2cy03cPcpDnA2SMgu0nUxslWoBHdYzUg__";
pub const A_NODE: &str = "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwhWZiflZpXlQqeKU7MSCgswUJStDEwMogMiUZOamKlkZmqOKplYUZBaBxE1NTY3gosWZ6UpWSj5ljuYp*p7l5unBxXnF2WVhVU4uAf7Ozi5JpX7O5SbuHuUhzgZJmQXaTia2SrUAohcx8g__";
pub const A_GO: &str = "eAEBrABT-3siVExTLnZlciI6IjIuMCIsIlRMUy5pZGVudGlmaWVyIjoieGlhb2p1biIsIlRMUy5zZGthcHBpZCI6MTQwMDAwMDAwMCwiVExTLmV4cGlyZSI6MTU1NTIwMDAsIlRMUy50aW1lIjoxNzAwMDAwMDAwLCJUTFMuc2lnIjoiTHZBN2QvSXc3Z1NzbnNrdlZ6QkRQT0NDRGJ1TkN3NEdId1RDMGJpcCtCND0ifQrfwzH8";
pub const A_SIG: &str = "LvA7d/Iw7gSsnskvVzBDPOCCDbuNCw4GHwTC0bip+B4=";

/// Spec §4.4 vector B (carries userbuf `abc`).
pub const B_PYTHON: &str = "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkKjIT87NK82CSxSnZiQUFmSlAKUMTAyiAyqVWFGQWpYJkTE1NjRDiJZm5YFFzNPWlxalFSaVpIFsiw72y4FZkpoOEArNCjAwMKwKyI7L1E30NU7UrDcoSs6OSDLyNMgOK3EpTtbUNik0rzZLcfG2VagHdkjl6";
pub const B_GO: &str = "eAEBwQA*-3siVExTLnZlciI6IjIuMCIsIlRMUy5pZGVudGlmaWVyIjoieGlhb2p1biIsIlRMUy5zZGthcHBpZCI6MTQwMDAwMDAwMCwiVExTLmV4cGlyZSI6MTU1NTIwMDAsIlRMUy50aW1lIjoxNzAwMDAwMDAwLCJUTFMudXNlcmJ1ZiI6IllXSmoiLCJUTFMuc2lnIjoiUWpUMjAxeFBrWGsvYU0xZSt5MHZha1piMEsyaVByRnVlKyswczV5NmJGTT0ifQontTfk";
pub const B_SIG: &str = "QjT201xPkXk/aM1e+y0vakZb0K2iPrFue++0s5y6bFM=";

/// Spec §4.4 vector C (the official Go unit test's parameters with a pinned time).
pub const C_PYTHON: &str = "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkjGHCxSnZiQUFmSlAQUOoUGpFQWZRKlDABCpQkpkL4hqaG0ABTG9mOsisNNP04DKnyJTwoNTccFPvwKCsirKQqvBM-xyvcjfX0sog81BXVxPXrACzfFulWgD*1S4h";
pub const C_SIG: &str = "f5gSvBYdWRemW5KQRjxvTzWiOlJwFEuyR7UEE4EjP6o=";

/// Spec §4.4 vector D.
pub const D_PYTHON: &str = "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkElNyM-NgUsUp2YkFBZkpQAlDEwMogMqlVhRkFqUCZSzMTOCCJZm5ICFDczTFxZnpIMNNckIrCt30nbQDg-XdMqpCjS0sfMPLTcyLjdw9vdMLQpzdDMNzw330c0wjbZVqAeD3MM0_";
pub const D_SIG: &str = "4lUxqF/B+QS/FhzU388MWw47s2GIKgpTCF1WmWL/l5Y=";

pub const T0: u64 = 1_700_000_000;

/// Tencent's alphabet from standard base64, the way the official libraries do it.
pub fn tencent_b64(bytes: &[u8]) -> String {
    STANDARD
        .encode(bytes)
        .replace('+', "*")
        .replace('/', "-")
        .replace('=', "_")
}

/// Same without padding.
pub fn tencent_b64_unpadded(bytes: &[u8]) -> String {
    STANDARD_NO_PAD
        .encode(bytes)
        .replace('+', "*")
        .replace('/', "-")
}

/// Reverse of [`tencent_b64`] (test inputs are known to be valid).
pub fn from_tencent_b64(usersig: &str) -> Vec<u8> {
    let std = usersig
        .replace('*', "+")
        .replace('-', "/")
        .replace('_', "=");
    STANDARD.decode(std).expect("test input is valid base64")
}

pub fn zlib(data: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), Compression::new(level));
    encoder.write_all(data).expect("write to Vec");
    encoder.finish().expect("finish to Vec")
}

pub fn inflate(zlib: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(zlib)
        .read_to_end(&mut out)
        .expect("test input is valid zlib");
    out
}

/// The JSON document inside a UserSig, decoded without the crate.
pub fn inner_json(usersig: &str) -> serde_json::Value {
    serde_json::from_slice(&inflate(&from_tencent_b64(usersig))).expect("test input is JSON")
}

/// Wrap a JSON document the way the Python and Node libraries do (zlib default level, padded).
pub fn wrap(json: &str) -> String {
    tencent_b64(&zlib(json.as_bytes(), 6))
}

pub fn wrap_level(json: &str, level: u32) -> String {
    tencent_b64(&zlib(json.as_bytes(), level))
}

/// The string the HMAC covers (spec §4.2 step 2).
pub fn content(identifier: &str, sdkappid: u64, time: u64, expire: u64) -> String {
    format!(
        "TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\nTLS.time:{time}\nTLS.expire:{expire}\n"
    )
}

/// `TLS.sig` for a content string, computed with `hmac` directly.
pub fn sig_b64(key: &str, content: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(content.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// A correct `TLS.sig` for these parameters.
pub fn good_sig(key: &str, identifier: &str, sdkappid: u64, time: u64, expire: u64) -> String {
    sig_b64(key, &content(identifier, sdkappid, time, expire))
}

/// A valid Python-layout document for these parameters.
pub fn python_json(key: &str, identifier: &str, sdkappid: u64, time: u64, expire: u64) -> String {
    let sig = good_sig(key, identifier, sdkappid, time, expire);
    format!(
        "{{\"TLS.ver\": \"2.0\", \"TLS.identifier\": {}, \"TLS.sdkappid\": {sdkappid}, \
         \"TLS.expire\": {expire}, \"TLS.time\": {time}, \"TLS.sig\": \"{sig}\"}}",
        serde_json::Value::from(identifier)
    )
}

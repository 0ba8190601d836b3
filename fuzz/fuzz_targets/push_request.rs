#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ingestd::fuzz::push_request(data));

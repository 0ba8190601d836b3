#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ingestd::fuzz::compressed(data));

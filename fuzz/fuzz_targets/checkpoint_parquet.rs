#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| delta_tests::fuzz_targets::checkpoint_parquet(data));

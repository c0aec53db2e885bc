#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| delta_tests::fuzz_targets::dv_bitmap(data));

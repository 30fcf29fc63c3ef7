//! Data map bytes: a map that decodes is valid and survives a round trip.
#![no_main]
use kura_core::DataMap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = DataMap::from_bytes(data) {
        map.validate().expect("decoded maps are valid");
        assert_eq!(DataMap::from_bytes(&map.to_bytes()), Ok(map));
    }
});

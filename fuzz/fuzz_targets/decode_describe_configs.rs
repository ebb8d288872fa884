//! Fuzzes `courier_core::wire::DescribeConfigsResponse` (v1..=4).
#![no_main]

use courier_core::wire::DescribeConfigsResponse;
use libfuzzer_sys::fuzz_target;

#[path = "wire_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    if let Some(r) = common::check::<DescribeConfigsResponse>(selector, body) {
        let configs: usize = r.results.iter().map(|x| x.configs.len()).sum();
        let synonyms: usize = r
            .results
            .iter()
            .flat_map(|x| &x.configs)
            .map(|c| c.synonyms.len())
            .sum();
        assert!(r.results.len() + configs + synonyms <= body.len());
    }
});

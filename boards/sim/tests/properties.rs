//! Property tests: the range check of `ShmRegion::translate` against a u128 model, and the
//! spec parser on arbitrary input.
use proptest::prelude::*;
use splitrx_sim::shm::{ShmRegion, PAGE};
use splitrx_sim::traffic::{Generator, TrafficSpec, MAX_FRAME};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn translate_agrees_with_a_wide_model(
        base_page in prop_oneof![Just(0u64), 1u64..1 << 20, Just(u64::MAX / PAGE as u64 - 3)],
        bus in prop_oneof![any::<u64>(), 0u64..(1 << 33)],
        near in any::<bool>(),
        delta in -70_000i64..70_000,
        len in prop_oneof![0usize..20_000, Just(usize::MAX), any::<usize>()],
    ) {
        let base = base_page * PAGE as u64;
        // Addresses near the region are the interesting ones.
        let bus = if near { base.wrapping_add_signed(delta) } else { bus };
        let r = ShmRegion::create_temp("prop", 3 * PAGE, base).unwrap();
        let size = r.len() as u128;
        let inside = u128::from(bus) >= u128::from(base)
            && u128::from(bus) + len as u128 <= u128::from(base) + size;
        let got = r.translate(bus, len);
        prop_assert_eq!(got.is_some(), inside);
        if let Some(p) = got {
            prop_assert_eq!(p.as_ptr() as usize - r.as_ptr().as_ptr() as usize, (bus - base) as usize);
        }
    }

    #[test]
    fn spec_parser_never_panics(s in "[a-z0-9:@*,/ -]{0,40}") {
        let _ = TrafficSpec::parse(&s);
    }

    #[test]
    fn generated_specs_roundtrip_and_respect_limits(
        items in proptest::collection::vec(
            (
                prop::sample::select(vec!["tcp4", "tcp6", "udp4", "udp6", "vxlan-tcp", "vxlan-udp",
                    "roce-write", "roce-send", "roce6-write", "roce6-send"]),
                proptest::option::of(1u16..4095),
                0u32..9001,
                0u32..9001,
                1u32..1001,
            ),
            1..5,
        ),
        seed in any::<u64>(),
    ) {
        let text = items
            .iter()
            .map(|(k, vlan, a, b, w)| {
                let vlan = vlan.map(|v| format!("vlan{v}-")).unwrap_or_default();
                format!("{vlan}{k}:{}-{}*{w}", a.min(b), a.max(b))
            })
            .collect::<Vec<_>>()
            .join(",");
        let spec = TrafficSpec::parse(&text).unwrap();
        prop_assert_eq!(TrafficSpec::parse(&spec.to_string()).unwrap(), spec.clone());
        let mut g = Generator::new(&spec, seed);
        for f in g.by_ref().take(20) {
            prop_assert!(f.bytes.len() <= spec.max_frame_len() && f.bytes.len() <= MAX_FRAME);
            prop_assert_eq!(f.truth.frame_len as usize, f.bytes.len());
            prop_assert!(f.truth.payload(&f.bytes).is_some());
        }
    }
}

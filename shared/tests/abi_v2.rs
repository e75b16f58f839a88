//! ABI 2.0 (issue 9, feature 9): the completion record is 48 bytes and a 1.x peer is refused
//! cleanly wherever the two sides meet: the bootstrap mailbox (firmware `fw_error` 2) and every
//! queue region header (`HeaderError::AbiMismatch`, CreateRxQueue answers `BadRegion`; the
//! firmware side is tested in `firmware/tests/offload.rs`).

use splitrx_shared::abi::*;
use splitrx_shared::bootstrap::{Bootstrap, BootstrapError};
use zerocopy::little_endian::U32;

#[test]
fn version_and_completion_size() {
    assert_eq!(
        ABI_VERSION, 0x0002_0003,
        "2.3: the RC requester's send rings, ModifyQp's requester attributes and counters"
    );
    assert_eq!(abi_major(ABI_VERSION), 2);
    assert_eq!(RingKind::RxCompletion.entry_size(), 48);
    assert_eq!(core::mem::size_of::<RxCompletion>(), 48);
}

#[test]
fn a_1_x_mailbox_is_refused_with_code_2() {
    let mut b = Bootstrap::posted(128, 64 << 10, 1);
    assert_eq!(b.validate(1 << 20), Ok((128, 64 << 10)));
    let v1 = abi_version(1, 0);
    b.abi_version = U32::new(v1);
    let e = b.validate(1 << 20).unwrap_err();
    assert_eq!(e, BootstrapError::AbiMismatch { host: v1 });
    assert_eq!(e.code(), 2);
    b.abi_version = U32::new(abi_version(2, 3));
    assert_eq!(b.validate(1 << 20), Ok((128, 64 << 10)), "any 2.x minor");
}

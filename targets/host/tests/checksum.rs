//! The host's checksum hook (hardware CRC-32C where the CPU has SSE4.2) computes exactly the
//! software default: same values, same append convention, for every length 0..=2048 and
//! every split of a frame into header and body.

use rsm_hal::{soft_crc32c_append, Checksum};
use rsm_host::HostPlatform;

#[test]
fn host_crc32c_equals_the_software_default() {
    let p = HostPlatform::new();
    let data: Vec<u8> = (0..2048u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert_eq!(p.crc32c_append(0, b"123456789"), 0xE306_9283);
    for len in 0..=data.len() {
        let d = &data[..len];
        assert_eq!(
            p.crc32c_append(0, d),
            soft_crc32c_append(0, d),
            "length {len}"
        );
    }
    for split in [0, 1, 7, 36, 100, 1499, 2048] {
        let (a, b) = data.split_at(split);
        assert_eq!(
            p.crc32c_append(p.crc32c_append(0, a), b),
            soft_crc32c_append(0, &data),
            "split at {split}"
        );
    }
}

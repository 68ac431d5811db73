//! The README's minimal image application: node 1 publishes a 64 KiB segment to node 2
//! and serves signals for a minute (built with the image; see the README).

#![no_std]
#![no_main]
use defmt::println;
use rsm_board::net::{VirtioLink, FRAME_MAX};
use rsm_board::platform::{KernelPlatform, KernelRegion};
use rsm_board::{clock, entry, exit, statics::StaticCell, Boot, StaticBuf};
use rsm_core::{lazy::LazyRsm, proto::NetConfig, AccessEntry, Config, CreateFlags, SegmentRef};
use rsm_hal::{Clock, Link};

static RSM: LazyRsm<KernelPlatform, 32, 8, 8, FRAME_MAX> = LazyRsm::new(|| {
    Some((
        KernelPlatform::new(),
        Config {
            node_id: 1,
            ..Config::DEFAULT
        },
    ))
});
static LINK: StaticCell<VirtioLink> = StaticCell::new();
static SEGMENT: StaticBuf<65536> = StaticBuf::new();

fn main(_boot: &Boot) -> u32 {
    let (Ok(rsm), Some(link)) = (RSM.get(), VirtioLink::open()) else {
        return exit::FAIL;
    };
    let Ok(link) = LINK.put(link) else {
        return exit::FAIL;
    };
    let cfg = NetConfig {
        incarnation: clock::rdtsc(),
        max_frame: link.max_frame(),
    };
    rsm.net_start(rsm.platform().now(), cfg);
    rsm.attach_link(link); // blocking calls now drive virtio-net themselves
    let Some(mem) = SEGMENT.take() else {
        return exit::FAIL;
    };
    let mem = KernelRegion::from_static(mem);
    let published = rsm.get_controller(Some("rsmnet0")).and_then(|c| {
        let seg = rsm.export_create(c, mem, CreateFlags::empty())?;
        rsm.export_publish(seg, 0x40_9000, &[AccessEntry::new(2, 0o600)])?;
        // Serve: wake on every signal an importer posts, for a minute.
        for _ in 0..60 {
            let _ = rsm.intr_signal_wait(SegmentRef::Export(seg), 1000);
        }
        Ok(seg)
    });
    println!("served: {=bool}", published.is_ok());
    if published.is_ok() {
        exit::PASS
    } else {
        exit::FAIL
    }
}
entry!(main);

//! A fixed-capacity slot table with generation tags (no heap; `heapless` storage).
//!
//! Slots are reused through a free list; every removal bumps the slot's generation so that a
//! handle to the old occupant no longer matches. Capacity `N` is chosen by the embedder and must
//! be at most 65536 (indices are 16 bits).

use crate::handle::GEN_MAX;
use heapless::Vec;

struct Slot<T> {
    gen: u32,
    val: Option<T>,
    next_free: Option<u16>,
}

/// A table of at most `N` values addressed by (index, generation).
/// The 32-bit id a slot travels under on the wire: index (high 16 bits) and the low 16 bits
/// of its generation. Unique among live slots; a stale id rarely (1 in 65536 reuses of the same
/// slot) matches a newer occupant, and every use re-validates what it finds.
pub(crate) fn wire_id(index: u16, gen: u32) -> u32 {
    (u32::from(index) << 16) | (gen & 0xffff)
}

pub(crate) struct Table<T, const N: usize> {
    slots: Vec<Slot<T>, N>,
    free: Option<u16>,
    len: usize,
}

impl<T, const N: usize> Table<T, N> {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        const { assert!(N <= 1 << 16, "table capacity must fit 16-bit indices") };
        Table {
            slots: Vec::new(),
            free: None,
            len: 0,
        }
    }

    /// Number of occupied slots.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// `true` when no slot is free.
    pub(crate) fn is_full(&self) -> bool {
        self.len == N
    }

    /// Store `val`; returns its (index, generation), or gives `val` back when full.
    pub(crate) fn insert(&mut self, val: T) -> Result<(u16, u32), T> {
        if let Some(i) = self.free {
            let slot = &mut self.slots[usize::from(i)];
            self.free = slot.next_free.take();
            slot.val = Some(val);
            self.len += 1;
            return Ok((i, slot.gen));
        }
        let i = self.slots.len();
        let Ok(index) = u16::try_from(i) else {
            return Err(val);
        };
        if self
            .slots
            .push(Slot {
                gen: 1,
                val: None,
                next_free: None,
            })
            .is_err()
        {
            return Err(val);
        }
        self.slots[i].val = Some(val);
        self.len += 1;
        Ok((index, 1))
    }

    /// The value at (index, gen) if that slot is occupied by that generation.
    pub(crate) fn get(&self, index: u16, gen: u32) -> Option<&T> {
        let slot = self.slots.get(usize::from(index))?;
        if slot.gen != gen {
            return None;
        }
        slot.val.as_ref()
    }

    /// Mutable access to the value at (index, gen).
    pub(crate) fn get_mut(&mut self, index: u16, gen: u32) -> Option<&mut T> {
        let slot = self.slots.get_mut(usize::from(index))?;
        if slot.gen != gen {
            return None;
        }
        slot.val.as_mut()
    }

    /// Remove and return the value at (index, gen); the slot's generation moves on.
    pub(crate) fn remove(&mut self, index: u16, gen: u32) -> Option<T> {
        let slot = self.slots.get_mut(usize::from(index))?;
        if slot.gen != gen {
            return None;
        }
        let val = slot.val.take()?;
        slot.gen = if slot.gen >= GEN_MAX { 1 } else { slot.gen + 1 };
        slot.next_free = self.free;
        self.free = Some(index);
        self.len -= 1;
        Some(val)
    }

    /// Iterate over occupied slots as (index, generation, value).
    /// The (index, generation) of the live slot a wire id ([`wire_id`]) names, if any.
    pub(crate) fn find_wire(&self, id: u32) -> Option<(u16, u32)> {
        let index = (id >> 16) as u16;
        let slot = self.slots.get(usize::from(index))?;
        (slot.val.is_some() && slot.gen & 0xffff == id & 0xffff).then_some((index, slot.gen))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u16, u32, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.val.as_ref().map(|v| (i as u16, s.gen, v)))
    }

    /// Take every value out (the node's teardown); the table is left empty.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.free = None;
        self.len = 0;
        core::iter::from_fn(move || loop {
            if let Some(val) = self.slots.pop()?.val {
                return Some(val);
            }
        })
    }

    /// Iterate mutably over occupied slots as (index, generation, value).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (u16, u32, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.val.as_mut().map(|v| (i as u16, s.gen, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove_and_reuse() {
        let mut t: Table<u32, 2> = Table::new();
        let (a, ga) = t.insert(10).unwrap();
        let (b, gb) = t.insert(20).unwrap();
        assert!(t.is_full());
        assert_eq!(t.insert(30), Err(30));
        assert_eq!(t.get(a, ga), Some(&10));
        assert_eq!(t.remove(a, ga), Some(10));
        assert_eq!(t.remove(a, ga), None, "double remove");
        assert_eq!(t.get(a, ga), None, "stale generation");
        let (c, gc) = t.insert(40).unwrap();
        assert_eq!(c, a);
        assert_ne!(gc, ga);
        assert_eq!(t.get(b, gb), Some(&20));
        assert_eq!(t.len(), 2);
        assert_eq!(t.iter().map(|(_, _, v)| *v).sum::<u32>(), 60);
    }

    #[test]
    fn out_of_range_index_is_none() {
        let mut t: Table<u8, 4> = Table::new();
        assert_eq!(t.get(3, 1), None);
        assert_eq!(t.get_mut(9, 1), None);
        assert_eq!(t.remove(9, 1), None);
    }
}

//! C-shaped entry points for this group (see the parent module).

//! edas-store (in progress).

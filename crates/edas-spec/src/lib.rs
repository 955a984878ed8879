//! edas-spec (in progress).

//! edas-pop (in progress).

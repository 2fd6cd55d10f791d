# src/lib: the common library (liblib.a), linked by every binary.

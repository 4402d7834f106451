"""Differential conformance suite: the safemm model against the real Linux kernel.

The same random sequence of memory-map operations (mmap, munmap, mprotect,
mremap, madvise, mlock, memfd calls, one-byte loads and stores, malformed calls,
fork and calls in the child) runs on the running kernel and on the model;
results, errno values, VMA boundaries and permissions and the bytes read back are
compared step by step, in the parent and in the child, and a disagreement is
shrunk to a minimal sequence.

Modules:

* :mod:`.ops` — the operation vocabulary, relative to a 16-page region with
  guard pages (the *window*), and the rule that keeps real calls inside it;
* :mod:`.layout` — ``/proc/PID/maps`` parsing into a comparable layout;
* :mod:`.steps` — results, and the one loop both sides run sequences with;
* :mod:`.kernel_side` — the real kernel, through ``executor.c``, a small C
  helper compiled with the machine's gcc, which keeps its window undisturbed
  (the argument is at the top of ``executor.c``);
* :mod:`.model_side` — the model, through ``Kernel().spawn()``;
* :mod:`.generator` — random sequences (seeded, or as a hypothesis strategy);
* :mod:`.compare` — comparison, shrinking, the seeded runner and the
  ``safemm conformance`` command;
* :mod:`.selftests` — scenarios ported from the kernel's own selftests
  (``tools/testing/selftests/mm/``), checked on the kernel and compared with the model.

Nothing is imported here, so that ``safemm.conformance.ops`` costs only itself.
"""

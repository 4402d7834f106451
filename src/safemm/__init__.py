"""safemm: a checked model of the Linux mm, and a typestate API after the Rust kernel crate.

The model (:mod:`safemm.model`) is a pure-Python Linux mm that checks kernel contracts at run
time and reports violations as kernel-style splats; the safe layer (:mod:`safemm.mm`,
:mod:`safemm.virt`, :mod:`safemm.page`, :mod:`safemm.fs`, :mod:`safemm.task`) is what driver
code is written against, so that ``mypy --strict`` rejects illegal calls before they run.
"""

from importlib.metadata import version as _version

from .model.errors import BusError as BusError
from .model.errors import Deadlock as Deadlock
from .model.errors import InvariantError as InvariantError
from .model.errors import KernelBug as KernelBug
from .model.errors import KernelError as KernelError
from .model.errors import KernelWarning as KernelWarning
from .model.errors import Livelock as Livelock
from .model.errors import SegmentationFault as SegmentationFault
from .model.errors import StaleReferenceError as StaleReferenceError
from .model.kernel import Kernel as Kernel
from .model.mman import MADV_DOFORK as MADV_DOFORK
from .model.mman import MADV_DONTFORK as MADV_DONTFORK
from .model.mman import MADV_DONTNEED as MADV_DONTNEED
from .model.mman import MADV_KEEPONFORK as MADV_KEEPONFORK
from .model.mman import MADV_WIPEONFORK as MADV_WIPEONFORK
from .model.mman import MAP_ANONYMOUS as MAP_ANONYMOUS
from .model.mman import MAP_FIXED as MAP_FIXED
from .model.mman import MAP_FIXED_NOREPLACE as MAP_FIXED_NOREPLACE
from .model.mman import MAP_HUGETLB as MAP_HUGETLB
from .model.mman import MAP_LOCKED as MAP_LOCKED
from .model.mman import MAP_PRIVATE as MAP_PRIVATE
from .model.mman import MAP_SHARED as MAP_SHARED
from .model.mman import MREMAP_DONTUNMAP as MREMAP_DONTUNMAP
from .model.mman import MREMAP_FIXED as MREMAP_FIXED
from .model.mman import MREMAP_MAYMOVE as MREMAP_MAYMOVE
from .model.mman import PAGE_SIZE as PAGE_SIZE
from .model.mman import PROT_EXEC as PROT_EXEC
from .model.mman import PROT_NONE as PROT_NONE
from .model.mman import PROT_READ as PROT_READ
from .model.mman import PROT_WRITE as PROT_WRITE
from .model.process import O_RDONLY as O_RDONLY
from .model.process import O_RDWR as O_RDWR
from .model.process import O_WRONLY as O_WRONLY
from .model.process import Process as Process
from .model.vm_flags import VmFlags as VmFlags

#: The installed version, read from the package metadata (set once, in pyproject.toml).
__version__: str = _version("safemm")

__all__ = [
    "MADV_DOFORK",
    "MADV_DONTFORK",
    "MADV_DONTNEED",
    "MADV_KEEPONFORK",
    "MADV_WIPEONFORK",
    "MAP_ANONYMOUS",
    "MAP_FIXED",
    "MAP_FIXED_NOREPLACE",
    "MAP_HUGETLB",
    "MAP_LOCKED",
    "MAP_PRIVATE",
    "MAP_SHARED",
    "MREMAP_DONTUNMAP",
    "MREMAP_FIXED",
    "MREMAP_MAYMOVE",
    "O_RDONLY",
    "O_RDWR",
    "O_WRONLY",
    "PAGE_SIZE",
    "PROT_EXEC",
    "PROT_NONE",
    "PROT_READ",
    "PROT_WRITE",
    "BusError",
    "Deadlock",
    "InvariantError",
    "Kernel",
    "KernelBug",
    "KernelError",
    "KernelWarning",
    "Livelock",
    "Process",
    "SegmentationFault",
    "StaleReferenceError",
    "VmFlags",
]

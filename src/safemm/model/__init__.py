"""The checked model of the Linux mm (the "C side").

Each module mirrors one kernel file and names the kernel functions it reproduces; this
package re-exports the raw kernel API that tests and the safe layer use. Drivers never import
it: they use the safe layer (:mod:`safemm.mm`, :mod:`safemm.virt`, ...).
"""

from .contracts import CONTRACTS as CONTRACTS
from .contracts import Contract as Contract
from .errors import BusError as BusError
from .errors import Deadlock as Deadlock
from .errors import InvariantError as InvariantError
from .errors import KernelBug as KernelBug
from .errors import KernelError as KernelError
from .errors import KernelWarning as KernelWarning
from .errors import Livelock as Livelock
from .errors import SegmentationFault as SegmentationFault
from .errors import StaleReferenceError as StaleReferenceError
from .fs import AddressSpace as AddressSpace
from .fs import AddressSpaceOperationsStruct as AddressSpaceOperationsStruct
from .fs import File as File
from .fs import FileOperationsStruct as FileOperationsStruct
from .fs import Inode as Inode
from .fs import alloc_anon_inode as alloc_anon_inode
from .kernel import Device as Device
from .kernel import Kernel as Kernel
from .mm_types import MmStruct as MmStruct
from .mm_types import Vma as Vma
from .mm_types import VmFault as VmFault
from .mm_types import VmOperationsStruct as VmOperationsStruct
from .page_alloc import GFP_ATOMIC as GFP_ATOMIC
from .page_alloc import GFP_KERNEL as GFP_KERNEL
from .page_alloc import GFP_NOWAIT as GFP_NOWAIT
from .page_alloc import Gfp as Gfp
from .page_alloc import Page as Page
from .page_alloc import PageKind as PageKind
from .printk import Splat as Splat
from .printk import SplatKind as SplatKind
from .process import Process as Process
from .vm_flags import VmFlags as VmFlags

"""Sleeping in an RCU read-side section."""

from __future__ import annotations

from safemm.mm import MmWithUser
from safemm.page import Page
from safemm.rcu import rcu_read_lock
from safemm.sync import Mutex
from safemm.task import msleep


def rcu_msleep() -> None:
    with rcu_read_lock():
        msleep(1)  # atomic: atomic-sleep


def rcu_live_guard(m: Mutex) -> None:
    g = rcu_read_lock()
    m.lock().unlock()  # atomic: atomic-sleep
    g.unlock()


def rcu_alloc() -> None:
    with rcu_read_lock():
        Page.alloc_page().free()  # atomic: atomic-sleep


def rcu_mmap_lock(mm: MmWithUser) -> None:
    with rcu_read_lock():
        mm.mmap_read_lock().unlock()  # atomic: atomic-sleep

"""Built-in allocation methods, each a plugin registered through the entry-point group.

Every module here is loaded exactly like a third party's allocator: it implements
``chargeback_register_allocators`` and registers one :class:`~chargeback_engine.components.Allocator`.
"""

"""Built-in collectors: each is a plugin module, registered through the entry points like a third party's."""

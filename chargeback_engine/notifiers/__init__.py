"""Built-in notifiers (plugins): each module is registered through the entry points like a third party's."""

"""Policy-as-code: the model, the match language, loading and validation.

- ``model``: the immutable :class:`Policy` / :class:`PolicySet` and the canonical content hash;
- ``match``: the ``when:`` language and tag normalisation;
- ``yaml``: the hardened YAML reader (positions for every value);
- ``schema``: the base schema and its assembly with plugin fragments;
- ``validate``: the schema and semantic layers; ``checks``: helpers for allocators' checks;
- ``build``: document -> model; ``loader``: ``load_policies()`` and ``validate()``.
"""

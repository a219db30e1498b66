"""The bottom of the tree: what every command line shares, below taxonomy, index, embed, training, ui and demo.

- `toolkit.settings`: where the store and the catalog live and which model (SPEC §7: a flag wins over
  `TOL_STORE` / `TOL_DB` / `TOL_MODEL`, the environment over the default), resolved once in `Settings`.
- `toolkit.cli`: the logging set-up, progress events and their tqdm bars, table/CSV/JSON row writers,
  the argument definitions several commands share, and `chunks`.

A package of its own rather than a module of `taxonomy`: these are no taxonomy concerns, and every
package may import it because it imports only the standard library (tqdm inside a function), which
`tests/test_layering.py` checks.
"""

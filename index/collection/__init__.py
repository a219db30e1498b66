"""Collections as they lie on disk: the readers of catalogs and folders, the safe image opener, and
the entries they yield. Training reads collections through this package and nothing else of `index`.
"""

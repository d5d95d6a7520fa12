"""The browser side: assemble the static demo site (`build`) and serve it (`serve`).

The page itself lives in web/static/; see web/build.py for the site's layout.
"""

"""The viewer without Qt: the session (opened scans, results, the model, the jobs' requests),
the view state (what is on screen and how it is drawn) and the presenters (the words).

Nothing in this package imports PySide6 (``tests/test_import_boundaries.py`` imports every
module and checks): the Qt layer in :mod:`octviewer.ui` draws what these modules hold and
calls them back.
"""

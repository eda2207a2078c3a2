"""The PySide6 viewer. Everything here is a thin layer over :mod:`octviewer.core`.

Entry point: :func:`octviewer.ui.app.main`. Nothing in this package is imported by
``import octviewer``; torch is imported only inside worker jobs.
"""

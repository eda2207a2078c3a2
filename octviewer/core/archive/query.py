"""What a search asks for and what it finds (no network here): the query, one study, one series.

Patient identifiers in these records are shown to the user who searched; they are never
logged (log lines name UIDs' counts and nodes only)."""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from octviewer.errors import ArchiveConfigError

if TYPE_CHECKING:  # pydicom's import finds its decoder plugins (0.2 s): only when a query is built
    from pydicom import Dataset

MODALITIES = ("OPT", "OP")


@dataclass(frozen=True)
class StudyQuery:
    """A study search: every given field must match (``patient_name`` may use ``*``)."""

    patient_id: str = ""
    patient_name: str = ""
    date_from: str = ""  # YYYYMMDD
    date_to: str = ""
    modality: str = ""

    @property
    def date_range(self) -> str:
        """The DICOM range (``FROM-TO``, ``FROM-``, ``-TO``) or ""."""
        if not (self.date_from or self.date_to):
            return ""
        if self.date_from == self.date_to:
            return self.date_from
        return f"{self.date_from}-{self.date_to}"


def parse_dates(text: str) -> tuple[str, str]:
    """``YYYYMMDD-YYYYMMDD``, ``YYYY-MM-DD..YYYY-MM-DD``, ``FROM-`` or one day -> (from, to)."""
    text = text.strip()
    if not text:
        return "", ""
    if ".." in text:
        a, b = text.split("..", 1)
    elif re.fullmatch(r"\d{8}-\d{0,8}|-\d{8}", text):
        a, b = text.split("-", 1)
    else:
        a = b = text
    out = []
    for part in (a, b):
        part = part.strip().replace("-", "")
        if part and not re.fullmatch(r"\d{8}", part):
            raise ArchiveConfigError(
                f"{text!r} is not a date range: write YYYYMMDD-YYYYMMDD (or one date)."
            )
        if part:
            try:
                _dt.datetime.strptime(part, "%Y%m%d")
            except ValueError as e:
                raise ArchiveConfigError(f"{part} is not a valid date.") from e
        out.append(part)
    return out[0], out[1]


@dataclass(frozen=True)
class SeriesInfo:
    series_uid: str
    modality: str
    description: str
    number: str
    n_instances: int | None


@dataclass(frozen=True)
class StudyInfo:
    study_uid: str
    date: str
    description: str
    modalities: tuple[str, ...]
    patient_id: str
    patient_name: str
    n_series: int | None
    n_instances: int | None
    series: tuple[SeriesInfo, ...] = ()


def _int(ds: Dataset, kw: str) -> int | None:
    v = ds.get(kw)
    try:
        return int(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _modalities(ds: Dataset) -> tuple[str, ...]:
    v = ds.get("ModalitiesInStudy")
    if v is None or v == "":
        return ()
    return (str(v),) if isinstance(v, str) else tuple(str(m) for m in v)


def study_from(ds: Dataset) -> StudyInfo:
    return StudyInfo(
        study_uid=str(ds.get("StudyInstanceUID", "")),
        date=str(ds.get("StudyDate", "") or ""),
        description=str(ds.get("StudyDescription", "") or ""),
        modalities=_modalities(ds),
        patient_id=str(ds.get("PatientID", "") or ""),
        patient_name=str(ds.get("PatientName", "") or ""),
        n_series=_int(ds, "NumberOfStudyRelatedSeries"),
        n_instances=_int(ds, "NumberOfStudyRelatedInstances"),
    )


def series_from(ds: Dataset) -> SeriesInfo:
    return SeriesInfo(
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        modality=str(ds.get("Modality", "") or ""),
        description=str(ds.get("SeriesDescription", "") or ""),
        number=str(ds.get("SeriesNumber", "") or ""),
        n_instances=_int(ds, "NumberOfSeriesRelatedInstances"),
    )


def study_identifier(query: StudyQuery) -> Dataset:
    """The C-FIND identifier / QIDO filters of a study search."""
    from pydicom import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = ""
    ds.PatientID = query.patient_id
    ds.PatientName = query.patient_name
    ds.StudyDate = query.date_range
    ds.ModalitiesInStudy = query.modality
    for kw in ("StudyDescription", "StudyTime", "NumberOfStudyRelatedSeries",
               "NumberOfStudyRelatedInstances", "AccessionNumber"):  # fmt: skip
        setattr(ds, kw, "")
    return ds


def series_identifier(study_uid: str) -> Dataset:
    from pydicom import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = study_uid
    for kw in ("SeriesInstanceUID", "Modality", "SeriesDescription", "SeriesNumber",
               "NumberOfSeriesRelatedInstances"):  # fmt: skip
        setattr(ds, kw, "")
    return ds

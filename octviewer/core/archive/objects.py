"""The DICOM objects octviewer files into a patient's study: the printable report as
Encapsulated PDF, and the machine-readable result as a Comprehensive SR (TID 1500, highdicom).

Both go into the **source study** (its Study Instance UID; the patient and study modules copied
from the source instance), each in a new series. The SR holds one measurement group per
analysed frame: the class the model presents as a coded finding and every class probability as
a measurement, or "Not assessed" with its reason as a comment; the algorithm's identity (model
name, version, SHA-256); a reference to the source frame; and it stays UNVERIFIED and
preliminary (no one has signed it).

Codes: the classes and "Not assessed" use the private coding scheme ``99OCTV`` (a mapping to
SNOMED CT is a clinical decision left to the site); the rest are DICOM (DCM) and UCUM codes.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from pydicom import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from octviewer._version import __version__
from octviewer.core.results import FrameResult, ScanResult

SCHEME = "99OCTV"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
PDF_SERIES_NUMBER = 9701
SR_SERIES_NUMBER = 9702
CLASS_MEANINGS = {
    "CNV": "Choroidal neovascularization",
    "DME": "Diabetic macular edema",
    "DRUSEN": "Drusen",
    "NORMAL": "Normal",
}
PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
)
TYPE2_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
               "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName")  # fmt: skip


@dataclass(frozen=True)
class ResultObjects:
    """What one analysis files into the archive (the PDF instance, the SR instance)."""

    pdf: Dataset
    sr: Dataset

    @property
    def datasets(self) -> tuple[Dataset, Dataset]:
        return (self.pdf, self.sr)


def series_label(result: ScanResult) -> str:
    """The series description both objects carry: names the model and its SHA-256 prefix, so
    a later batch can see that this study already holds this model's result (64 characters)."""
    m = result.model
    return f"octviewer {m.name} {m.version} [{m.sha256[:16]}]"[:64]


def complete_source(source: Dataset) -> Dataset:
    """A copy of the source header with the type-2 patient/study attributes present (empty when
    the source lacks them: highdicom and the PDF module copy them)."""
    ds = Dataset()
    for kw in (*PATIENT_STUDY, "SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "Modality"):
        if kw in source:
            setattr(ds, kw, source[kw].value)
    for kw in TYPE2_STUDY:
        if kw not in ds:
            setattr(ds, kw, "")
    for kw in ("NumberOfFrames", "Rows", "Columns"):
        if kw in source:
            setattr(ds, kw, source[kw].value)
    return ds


def encapsulated_pdf(
    source: Dataset, pdf: bytes, result: ScanResult, when: _dt.datetime
) -> Dataset:
    """The report PDF as an Encapsulated PDF instance in the source study (new series)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = complete_source(source)
    for kw in ("SOPInstanceUID", "SeriesInstanceUID", "NumberOfFrames", "Rows", "Columns"):
        if kw in ds:
            delattr(ds, kw)
    ds.file_meta = meta
    ds.SOPClassUID = ENCAPSULATED_PDF
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = PDF_SERIES_NUMBER
    ds.SeriesDescription = series_label(result)
    ds.InstanceNumber = 1
    ds.ConversionType = "WSD"
    ds.Manufacturer = "octviewer"
    ds.SoftwareVersions = __version__
    ds.ContentDate = ds.InstanceCreationDate = when.strftime("%Y%m%d")
    ds.ContentTime = ds.InstanceCreationTime = when.strftime("%H%M%S")
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = "OCT analysis report (research use only, not for diagnosis)"
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    data = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocument = data
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.SourceInstanceSequence = [_reference(source)]
    return ds


def _reference(source: Dataset) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return ref


def _code(value: str, meaning: str, scheme: str = SCHEME):  # -> hd.sr.CodedConcept
    import highdicom as hd

    return hd.sr.CodedConcept(value, scheme, meaning)


def _frame_group(source: Dataset, fr: FrameResult, algorithm, multi: bool):
    """One TID 1501 measurement group: the frame's finding and probabilities, or not assessed."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    frames = [fr.frame_index + 1] if multi else None
    label = f"frame {fr.frame_index + 1}"
    tracking = hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=label)
    src = hd.sr.SourceImageForMeasurementGroup.from_source_image(source, frames)
    finding = codes.DCM.Finding
    if not fr.assessable:
        value = _code("NOT-ASSESSED", "Not assessed")
        group = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            algorithm_id=algorithm,
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(finding, value)],
            source_images=[src],
        )
        comment = hd.sr.TextContentItem(
            name=codes.DCM.Comment,
            value=(fr.reason_text or "not assessed")[:1024],
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
        )
        group[0].ContentSequence.append(comment)
        return group
    cls = fr.predicted_class
    value = _code(cls, CLASS_MEANINGS.get(cls, cls))
    unit = hd.sr.CodedConcept("1", "UCUM", "no units")
    measurements = [
        hd.sr.Measurement(
            name=_code(f"P-{name}", f"Probability of {CLASS_MEANINGS.get(name, name)}"),
            value=round(float(p), 6),
            unit=unit,
            algorithm_id=algorithm,
        )
        for name, p in zip(fr.class_names, fr.probabilities, strict=True)
    ]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(finding, value)],
        source_images=[src],
    )


def structured_report(source: Dataset, result: ScanResult, when: _dt.datetime) -> Dataset:
    """The Comprehensive SR (TID 1500) of ``result`` for the analysed ``source`` instance."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    src = complete_source(source)
    model = result.model
    algorithm = hd.sr.AlgorithmIdentification(
        name=model.name, version=model.version, parameters=[f"sha256={model.sha256}"]
    )
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name="octviewer", model_name=f"{model.name} {model.version}"
        ),
    )
    multi = int(getattr(source, "NumberOfFrames", 1) or 1) > 1
    groups = [_frame_group(src, fr, algorithm, multi) for fr in result.frames]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=_code("OCT-AI", "OCT B-scan classification (research use only)"),
        imaging_measurements=groups,
    )
    sr = hd.sr.ComprehensiveSR(
        evidence=[src],
        content=report[0],
        series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="octviewer",
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=series_label(result),
        software_versions=__version__,
        content_date=when.date(),
        content_time=when.time().replace(microsecond=0),
    )
    return sr


def result_objects(
    source: Dataset, pdf: bytes, result: ScanResult, when: _dt.datetime | None = None
) -> ResultObjects:
    """Both objects for one analysed source instance (read without pixels is enough)."""
    when = when or _dt.datetime.now().astimezone()
    return ResultObjects(
        encapsulated_pdf(source, pdf, result, when), structured_report(source, result, when)
    )


def findings_in_sr(sr: Dataset) -> list[dict[str, object]]:
    """The SR's measurement groups read back with highdicom: per group its tracking label, the
    finding's code value, the probabilities by name and the comment (the reason when not
    assessed). For tests, checks and a later batch."""
    import highdicom as hd

    report = hd.sr.MeasurementReport.from_sequence([_root_item(sr)])
    out: list[dict[str, object]] = []
    for g in report.get_image_measurement_groups():
        qe = [
            str(item.ConceptCodeSequence[0].CodeValue)
            for item in g[0].ContentSequence
            if item.ValueType == "CODE" and item.ConceptNameCodeSequence[0].CodeValue == "121071"
        ]
        comments = [
            str(item.TextValue)
            for item in g[0].ContentSequence
            if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == "121106"
        ]
        out.append(
            {
                "label": g.tracking_identifier,
                "finding": qe[0] if qe else None,
                "probabilities": {m.name.value: m.value for m in g.get_measurements()},
                "comment": comments[0] if comments else None,
                "algorithm": _algorithm(g[0]),
            }
        )
    return out


def _algorithm(group: Dataset) -> dict[str, str]:
    """The group's algorithm identification (TID 4019): name, version, parameters."""
    names = {"111001": "name", "111003": "version", "111002": "parameters"}
    out: dict[str, str] = {}
    for item in group.ContentSequence:
        key = names.get(item.ConceptNameCodeSequence[0].CodeValue)
        if key and item.ValueType == "TEXT":
            out[key] = str(item.TextValue)
    return out


def _root_item(sr: Dataset) -> Dataset:
    root = Dataset()
    for kw in (
        "ValueType",
        "ConceptNameCodeSequence",
        "ContinuityOfContent",
        "ContentTemplateSequence",
        "ContentSequence",
    ):
        setattr(root, kw, sr[kw].value)
    return root

"""The Qt-free core of octviewer: readers, the scan model, preprocessing, models, inference,
Grad-CAM and reports. Nothing under ``octviewer.core`` may import Qt; heavy libraries
(torch, timm, pytorch-grad-cam) are imported lazily inside the modules that need them.
"""

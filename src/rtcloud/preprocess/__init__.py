"""Real-time preprocessing: motion correction, FD/DVARS/tSNR, smoothing, ROIs, incremental GLM.

Usable from any experiment script in any mode (it runs in the script's process)::

    from rtcloud.preprocess import Pipeline

    pipe = Pipeline(fwhm=6, rois={"v1": "masks/v1.nii.gz"}, fd_threshold=0.5, tr=2.0)
    for tr in range(numVolumes):
        img = convertDicomImgToNifti(dataInterface.getImageData(streamId, tr))
        result = pipe.process(img)            # motion, fd, dvars, roi_means, activation ...
        subjInterface.setResult(runNum, tr, result.activation["v1"])
        webInterface.sendQuality(runNum, tr, result.quality())   # the page's quality view

Every module here is pure computation (numpy, scipy, nibabel): no threads, sockets, event
loops or servers (``tests/preprocess/test_preprocess_purity.py`` checks it).
"""

from rtcloud.preprocess.glm import IncrementalGlm
from rtcloud.preprocess.metrics import RunningTsnr, dvars, framewise_displacement
from rtcloud.preprocess.motion import PARAM_NAMES, MotionCorrector, MotionEstimate
from rtcloud.preprocess.pipeline import STAGES, Pipeline, VolumeResult
from rtcloud.preprocess.roi import Roi, resample_mask
from rtcloud.preprocess.slices import SliceViewer
from rtcloud.preprocess.smooth import gaussian_smooth

__all__ = [
    "PARAM_NAMES",
    "STAGES",
    "IncrementalGlm",
    "MotionCorrector",
    "MotionEstimate",
    "Pipeline",
    "Roi",
    "RunningTsnr",
    "SliceViewer",
    "VolumeResult",
    "dvars",
    "framewise_displacement",
    "gaussian_smooth",
    "resample_mask",
]

"""Guard against a Qt binding that mis-counts references (PySide6 6.12.0 on Python 3.11 does).

Such a binding crashes the player and the panel only after minutes ("deallocating None"), so check
the two paths they use many times a second: QImage from pixel data and signals with Python objects.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("PySide6")


def test_qimage_and_signals_keep_reference_counts(qapp):
    from PySide6.QtCore import QObject, Signal, Slot
    from PySide6.QtGui import QImage

    rgb = np.zeros((54, 96, 3), np.uint8)

    class Sender(QObject):
        sig = Signal(str, object, object)

    class Receiver(QObject):
        calls = 0

        @Slot(str, object, object)
        def on(self, a, b, c):
            self.calls += 1

    sender, receiver = Sender(), Receiver()
    sender.sig.connect(receiver.on)
    none, true = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(3000):
        QImage(rgb.tobytes(), 96, 54, rgb.strides[0], QImage.Format_RGB888).copy()
        QImage(rgb.data, 96, 54, rgb.strides[0], QImage.Format_RGB888).copy()
        sender.sig.emit("x", None, True)
    assert receiver.calls == 3000
    assert abs(sys.getrefcount(None) - none) < 50 and abs(sys.getrefcount(True) - true) < 50

"""``visual.Window``, ``Rect``, ``TextStim``: nothing is drawn; a participant answers."""

import threading

from psychopy import event

#: seconds from a flip to the simulated participant's key press
ANSWER_AFTER = 0.3


class Window:
    def __init__(self, **options):
        self.flips = 0

    def flip(self):
        display = self.flips
        self.flips += 1
        threading.Timer(ANSWER_AFTER, event.press, args=("f", display)).start()


class Rect:
    def __init__(self, *args, **options):
        self.height = 0.0

    def draw(self):
        pass


class TextStim:
    def __init__(self, *args, **options):
        self.text = ""

    def draw(self):
        pass

"""Observing nodes without keeping them alive, and placing points without leaving Slicer's settings changed.

``slicer.util.VTKObservationMixin.removeObserver`` removes the VTK observer but keeps the node as a key of
its bookkeeping, so every segmentation the panel ever watched stayed in memory for the session (checked in
Slicer's ``Base/Python/slicer/util.py``). ``NodeObservations`` keeps the tags ``AddObserver`` returns and
drops the node with them. ``PlacementSession`` records the selection and interaction nodes' placement
settings before Add lesion changes them and puts them back afterwards. ``showingErrors`` ends a panel
handler's failing block with Slicer's error dialog.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable

import slicer


class NodeObservations:
    """Observers of one node at a time; ``observe(None)`` (or another node) removes them and forgets the node."""

    def __init__(self, events: Iterable[int], callback: Callable) -> None:
        self._events = tuple(events)
        self._callback = callback
        self._node = None
        self._tags: list[int] = []

    @property
    def node(self):
        return self._node

    def observe(self, node) -> None:
        if node is self._node:
            return
        self.release()
        if node is not None:
            self._tags = [node.AddObserver(event, self._callback) for event in self._events]
            self._node = node

    def release(self) -> None:
        if self._node is not None:
            for tag in self._tags:
                self._node.RemoveObserver(tag)
        self._node, self._tags = None, []


class PlacementSession:
    """Persistent point placing into one markups node, with the previous placement settings restored at the end.

    While it lasts, ``on_stopped`` is called when the user leaves place mode some other way (Escape, the
    toolbar), so the panel's Add lesion button does not stay pressed with nothing being placed.
    """

    def __init__(self, selection_node, interaction_node, on_stopped: Callable[[], object] | None = None) -> None:
        self._selection = selection_node
        self._interaction = interaction_node
        self._on_stopped = on_stopped
        self._saved = None
        self._tag = None

    @property
    def active(self) -> bool:
        return self._saved is not None

    def start(self, points_node) -> None:
        if self.active:
            self.stop()
        self._saved = (self._selection.GetActivePlaceNodeClassName(), self._selection.GetActivePlaceNodeID(),
                       self._interaction.GetPlaceModePersistence(), self._interaction.GetCurrentInteractionMode())
        self._selection.SetReferenceActivePlaceNodeClassName(points_node.GetClassName())
        self._selection.SetActivePlaceNodeID(points_node.GetID())
        self._interaction.SetPlaceModePersistence(1)
        self._interaction.SetCurrentInteractionMode(self._interaction.Place)
        self._tag = self._interaction.AddObserver(self._interaction.InteractionModeChangedEvent, self._modeChanged)

    def _modeChanged(self, caller=None, event=None) -> None:
        if self.active and self._interaction.GetCurrentInteractionMode() != self._interaction.Place:
            self.stop(restore_mode=False)
            if self._on_stopped is not None:
                self._on_stopped()

    def stop(self, restore_mode: bool = True) -> None:
        """Put the saved settings back (the interaction mode too, unless the user has just chosen another)."""
        if not self.active:
            return
        self._interaction.RemoveObserver(self._tag)
        class_name, node_id, persistence, mode = self._saved
        self._saved, self._tag = None, None
        self._interaction.SetPlaceModePersistence(persistence)
        if restore_mode:
            self._interaction.SetCurrentInteractionMode(mode if mode != self._interaction.Place
                                                        else self._interaction.ViewTransform)
        if class_name:
            self._selection.SetReferenceActivePlaceNodeClassName(class_name)
        self._selection.SetActivePlaceNodeID(node_id)


@contextlib.contextmanager
def showingErrors(message: str, waitCursor: bool = False):
    """Show an error of the block in a dialog and end it there (tryWithErrorDisplay raises it again, which would
    skip what a handler does after the block: refreshing the lesion table, resetting a label)."""
    try:
        with slicer.util.tryWithErrorDisplay(message, waitCursor=waitCursor):
            yield
    except Exception:
        logging.debug("Shown to the user: %s", message, exc_info=True)

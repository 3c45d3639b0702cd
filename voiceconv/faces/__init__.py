"""The face domain: everything face-side beyond the networks (:mod:`voiceconv.nn`) and models (:mod:`voiceconv.models`).

* :mod:`~voiceconv.faces.data`: image files <-> ``[3, size, size]`` tensors, cached face folders, PNG grids.
* :mod:`~voiceconv.faces.tools`: load a face model file and make pictures with it (the ``voiceconv faces`` tools).
* :mod:`~voiceconv.faces.views`: what the page's Faces tab shows (no gradio, no training code).
* :mod:`~voiceconv.faces.audit`: flag broken images and non-faces in a face folder.
* :mod:`~voiceconv.faces.recipes`: what a face recipe holds.
* :mod:`~voiceconv.faces.tasks`: the face families' training tasks for the one loop (``voiceconv.train.loop.fit``).
* :mod:`~voiceconv.faces.debias`: the debiasing experiment (DB-VAE against a plain classifier, per group).

Importing this package imports none of them: the page loads ``data``, ``tools`` and ``views`` only, never the
training modules (``recipes``, ``tasks``, ``debias``).
"""

"""The synthetic video world: procedurally generated clips whose answers, spans and boxes are exact.

A scene holds coloured shapes that appear at one edge of the frame, move in a straight line and vanish
at the opposite edge, plus small grey distractor dots. Everything a question asks is computed from the
scene geometry, the same geometry that renders the pixels, so the ground truth is right by construction
(tests/test_world_pixels.py recovers it from the decoded .mp4 files).
"""

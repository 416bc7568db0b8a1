"""Tube masks and VideoMAE V2 running-cell decoder masks: counts and patterns."""

import pytest
import torch

from pretrain.masking import batch_masks, num_hidden_tokens, running_cell_mask, tube_mask


@pytest.mark.parametrize(
    "grid, ratio, hidden_per_slot", [((8, 14, 14), 0.9, 176), ((8, 14, 14), 0.75, 147), ((4, 4, 4), 0.75, 12)]
)
def test_tube_mask_hides_the_same_patches_in_every_time_slot(grid, ratio, hidden_per_slot):
    mask = tube_mask(grid, ratio, torch.Generator().manual_seed(1))
    assert mask.dtype == torch.bool and mask.shape == (grid[0] * grid[1] * grid[2],)
    slots = mask.reshape(grid[0], -1)  # (T', H'W')
    assert (slots == slots[0]).all()
    assert int(slots[0].sum()) == hidden_per_slot
    assert int(mask.sum()) == num_hidden_tokens(grid, ratio) == grid[0] * hidden_per_slot


def test_tube_masks_differ_between_clips_and_repeat_with_the_seed():
    first = tube_mask((8, 14, 14), 0.9, torch.Generator().manual_seed(3))
    again = tube_mask((8, 14, 14), 0.9, torch.Generator().manual_seed(3))
    other = tube_mask((8, 14, 14), 0.9, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_running_cell_keeps_half_of_every_cell_and_shifts_each_slot():
    grid = (4, 4, 6)
    mask = running_cell_mask(grid, 0.5, torch.Generator().manual_seed(0)).reshape(grid)  # (T', H', W')
    cells = mask.reshape(4, 2, 2, 3, 2).permute(0, 1, 3, 2, 4).reshape(4, 6, 4)  # (T', cells, 4)
    assert (cells.sum(-1) == 2).all()  # 2 of 4 kept in every cell and slot
    assert (cells == cells[:, :1]).all()  # the same pattern tiled over all cells
    assert (cells.sum(0) == 2).all()  # over 4 slots every position is reconstructed twice
    for t in range(3):  # the kept positions shift by one position per slot (queue order)
        assert torch.equal(cells[t + 1, 0], cells[t, 0].roll(-1))


def test_running_cell_pattern_matches_videomae_v2():
    # VideoMAE V2 queue for ratio 0.5: [dropped, dropped, kept, kept], pointer advanced before
    # each slot; starting pointer p gives slot t the queue rolled by p + t + 1.
    queue = torch.tensor([False, False, True, True])
    for start in range(4):
        generator = torch.Generator().manual_seed(start)
        mask = running_cell_mask((4, 2, 2), 0.5, generator).reshape(4, 4)
        pointer = int(torch.randint(4, (1,), generator=torch.Generator().manual_seed(start)))
        expected = torch.stack([queue.roll(-(pointer + t + 1)) for t in range(4)])
        assert torch.equal(mask, expected)


def test_running_cell_ratio_quarter_keeps_three_of_four():
    mask = running_cell_mask((2, 2, 2), 0.25).reshape(2, 4)
    assert (mask.sum(-1) == 3).all()


@pytest.mark.parametrize(
    "grid, ratio, message",
    [((2, 3, 4), 0.5, r"even patch grid, got \(H', W'\)=\(3, 4\)"), ((2, 2, 2), 0.1, "drops 0 of 4")],
)
def test_running_cell_rejects_impossible_settings(grid, ratio, message):
    with pytest.raises(ValueError, match=message):
        running_cell_mask(grid, ratio)


def test_batch_masks_have_equal_counts_per_row():
    encoder, decoder = batch_masks(5, (8, 14, 14), 0.9, 0.5, torch.Generator().manual_seed(0))
    assert encoder.shape == decoder.shape == (5, 1568)
    assert encoder.sum(1).tolist() == [1408] * 5
    assert decoder.sum(1).tolist() == [784] * 5
    assert batch_masks(2, (8, 14, 14), 0.9)[1] is None

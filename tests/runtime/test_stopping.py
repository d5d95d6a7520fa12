from qwen35web.runtime.stopping import StopStringFilter


def _run(stops, pieces):
    f = StopStringFilter(tuple(stops))
    out = [f.push(p) for p in pieces]
    return "".join(out) + f.flush(), f.stopped


def test_stop_string_split_across_pieces_is_cut_and_hidden():
    assert _run(["END"], ["hello E", "N", "D and more"]) == ("hello ", True)


def test_false_start_is_released():
    assert _run(["END"], ["E", "N", "x"]) == ("ENx", False)


def test_no_stop_strings_pass_everything_through():
    assert _run([], ["a", "b"]) == ("ab", False)


def test_earliest_of_several_stops_wins():
    assert _run(["\n\n", "###"], ["a ### b\n\n"]) == ("a ", True)

"""Config loading: packaged defaults equal the seed's values; bad input names its key path."""

import pytest

from rl_autoscaling.config import ConfigError, FarmConfig, load_config


def test_default_config_matches_spec_values():
    cfg = load_config()
    assert cfg.base_rate == 300 and cfg.window_duration == 1.0
    names = [p.name for p in cfg.phase_definitions]
    assert names == ["Steady Low Load", "Steady High Load", "Slow Oscillation", "Fast Oscillation"]
    assert [p.multiplier for p in cfg.phase_definitions] == [0.3, 1.5, 1.0, 1.0]
    fast = cfg.phase_definitions[3]
    assert (fast.oscillation_min, fast.oscillation_max, fast.oscillation_cycles) == (0.3, 1.7, 4)
    assert cfg.processing.model_a == pytest.approx(1.7099013205346125e-07)
    assert cfg.processing.min_time == pytest.approx(0.0465, abs=1e-4)
    assert cfg.processing.max_time == pytest.approx(2.8704, abs=1e-4)
    assert cfg.reward.weights.qos == 36 and cfg.reward.weights.scale.up == 5.5
    assert cfg.timing.scale_up_latency.expected == pytest.approx(7.1)
    assert cfg.queues.enqueued_total == "worker_queue:enqueued_total"


@pytest.mark.parametrize("overrides, message", [
    ({"phase_definitions": [{"name": "a", "phase_duration": 5}, {"name": "b", "phase_duration": 5},
                            {"name": "c", "phase_duration": 0}]},
     "phase_definitions[2].phase_duration must be > 0"),
    ({"phase_definitions": [{"name": "a", "phase_duration": 5, "pattern": "sawtooth"}]},
     "phase_definitions[0].pattern must be one of"),
    ({"reward.target_qos": 1.5}, "reward.target_qos must be <= 1"),
    ({"timing": {"wait_time": "fast"}}, "timing.wait_time must be a number"),
    ({"queues.worker": "worker queue"}, "queues.worker is not a valid queue name"),
    ({"queues.result": "worker_queue"}, "queue name must be distinct"),
    ({"redis": {"prot": 1}}, "unknown key redis.prot"),
    ({"phase_definitions": [{"phase_duration": 5}]}, "phase_definitions[0].name is required"),
    ({"timing.scale_up_latency": {"low": 9, "high": 5}}, "timing.scale_up_latency.low must be <= high"),
    # a ramp needs both ends (it used to ramp silently to 1.5)
    ({"phase_definitions": [{"name": "r", "phase_duration": 60, "pattern": "ramp",
                             "ramp_from": 0.3}]},
     "phase_definitions[0].ramp_to is required for a ramp phase"),
    ({"generator": {"rate_min": 3.0}}, "generator.rate_min must be <= rate_max"),
    ({"generator": {"start_max": 0.1}}, "generator.rate_min must be <= start_max"),
    ({"generator": {"shapes": ["steady", "sawtooth"]}}, "generator.shapes[1] must be one of"),
    ({"generator": {}, "trace": "t.csv"}, "trace and generator exclude each other"),
])
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert message in str(err.value)


def test_user_file_overrides_defaults(tmp_path):
    path = tmp_path / "farm.yml"
    path.write_text("base_rate: 120\nreward:\n  target_qos: 0.9\n")
    cfg = load_config(path, {"timing.wait_time": 0.2})
    assert cfg.base_rate == 120 and cfg.reward.target_qos == 0.9
    assert cfg.reward.queue_target == 30  # untouched keys keep the default
    assert cfg.timing.wait_time == 0.2
    assert isinstance(cfg, FarmConfig)


def test_bad_files_give_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("base_rate: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(scalar)


def test_replace_revalidates():
    cfg = load_config()
    assert cfg.replace({"base_rate": 60}).base_rate == 60
    with pytest.raises(ConfigError, match="base_rate must be > 0"):
        cfg.replace({"base_rate": -1})

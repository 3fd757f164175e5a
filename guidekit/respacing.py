"""Respacing strings exactly as ADM's ``space_timesteps`` (notes §2.8)."""

from __future__ import annotations

from .errors import InvalidParameterError


def space_timesteps(num_timesteps: int, spec: str | list[int]) -> set[int]:
    """Original timesteps kept by a respacing spec.

    ``"ddimN"``: the smallest integer stride giving exactly N steps from 0 (the last step is not T-1).
    ``"N"`` or ``"a,b,c"``: T is split into equal sections and each section is strided evenly,
    with the float stride accumulated and rounded half-to-even as the reference does.
    ``"timesteps:a,b,c"``: exactly those original timesteps (e.g. the ones a diffusers scheduler visits).
    ``""`` keeps every step.
    """
    if isinstance(spec, str):
        spec = spec.strip()
        if spec == "":
            return set(range(num_timesteps))
        if spec.startswith("timesteps:"):
            return _explicit(num_timesteps, spec)
        if spec.startswith("ddim"):
            try:
                desired = int(spec[len("ddim"):])
            except ValueError:
                raise InvalidParameterError(f"bad respacing {spec!r}: write 'ddimN' with an integer N, e.g. 'ddim25'") from None
            for stride in range(1, num_timesteps):
                if len(range(0, num_timesteps, stride)) == desired:
                    return set(range(0, num_timesteps, stride))
            counts = sorted({len(range(0, num_timesteps, stride)) for stride in range(1, num_timesteps)})
            near = sorted(counts, key=lambda n: abs(n - desired))[:2]
            raise InvalidParameterError(f"cannot create exactly {desired} steps with an integer stride from "
                                        f"{num_timesteps}; the nearest ddimN that work: {', '.join(f'ddim{n}' for n in sorted(near))}")
        try:
            section_counts = [int(x) for x in spec.split(",")]
        except ValueError:
            raise InvalidParameterError(
                f"bad respacing {spec!r}: use '' (all steps), 'ddimN', 'N' or comma-separated section counts like '10,10,10'"
            ) from None
    else:
        section_counts = [int(x) for x in spec]
    if any(c < 0 for c in section_counts) or not section_counts:
        raise InvalidParameterError(f"bad respacing {spec!r}: section counts must be non-negative integers")
    size_per = num_timesteps // len(section_counts)
    extra = num_timesteps % len(section_counts)
    start_idx = 0
    all_steps: list[int] = []
    for i, section_count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if size < section_count:
            raise InvalidParameterError(f"cannot divide section of {size} steps into {section_count}")
        frac_stride = 1 if section_count <= 1 else (size - 1) / (section_count - 1)
        cur_idx = 0.0
        for _ in range(section_count):
            all_steps.append(start_idx + round(cur_idx))
            cur_idx += frac_stride
        start_idx += size
    return set(all_steps)


def _explicit(num_timesteps: int, spec: str) -> set[int]:
    """The timesteps listed in ``"timesteps:a,b,c"``, each in [0, T), none twice."""
    try:
        listed = [int(x) for x in spec[len("timesteps:"):].split(",")]
    except ValueError:
        raise InvalidParameterError(f"bad respacing {spec!r}: write 'timesteps:' and comma-separated integer "
                                    "timesteps, e.g. 'timesteps:999,899,799'") from None
    bad = [t for t in listed if not 0 <= t < num_timesteps]
    if bad:
        raise InvalidParameterError(f"respacing {spec!r} lists timesteps {bad[:8]} outside 0..{num_timesteps - 1}")
    if len(set(listed)) != len(listed):
        twice = sorted({t for t in listed if listed.count(t) > 1})
        raise InvalidParameterError(f"respacing {spec!r} lists timesteps {twice[:8]} more than once; each step "
                                    "of the process is visited once")
    return set(listed)

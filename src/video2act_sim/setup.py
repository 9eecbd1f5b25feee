from setuptools import setup

package_name = "video2act_sim"

setup(
    name=package_name,
    version="0.1.0",
    packages=[package_name],
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="Video2Act maintainers",
    maintainer_email="maintainers@video2act.dev",
    description="Simulated arms (kinematic, MuJoCo SO-101) for closed-loop Video2Act runs without a robot, and the "
    "scripted expert that records demonstrations.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["sim_arm_node = video2act_sim.node:main"]},
)
